using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;

namespace Distill.DistillerService.Tests;

/// <summary>The REST/JSON routes of the proto's google.api.http options, over HTTP/2 as the server speaks it.</summary>
public class RestTests
{
    [Fact]
    public async Task RestRoutes_PostAndGetRuns_SpeakJson()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        using var http = new HttpClient
        {
            BaseAddress = new Uri(LoopbackCluster.AddressOf(cluster.Distiller!)),
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };

        var started = await http.PostAsJsonAsync("/v1/runs", new
        {
            spec = new { dataset = TinyDataset.Name, supportPerClass = 1, steps = 2, targetBatch = 50 },
            requestId = "rest-1",
        });
        Assert.Equal(HttpStatusCode.OK, started.StatusCode);
        var run = await started.Content.ReadFromJsonAsync<JsonElement>();
        var name = run.GetProperty("name").GetString()!;
        Assert.StartsWith("runs/run-", name);
        Assert.Equal("RUN_STATE_QUEUED", run.GetProperty("state").GetString());
        Assert.Equal("METHOD_KIP", run.GetProperty("spec").GetProperty("method").GetString());

        var list = await http.GetFromJsonAsync<JsonElement>("/v1/runs?pageSize=10");
        Assert.Equal(name, list.GetProperty("runs")[0].GetProperty("name").GetString());
        Assert.Equal(1, list.GetProperty("totalSize").GetInt32());
        var one = await http.GetFromJsonAsync<JsonElement>($"/v1/{name}");
        Assert.Equal(name, one.GetProperty("name").GetString());

        var bad = await http.PostAsJsonAsync("/v1/runs", new { spec = new { dataset = TinyDataset.Name, supportPerClass = 0, steps = 2 } });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("spec.support_per_class", await bad.Content.ReadAsStringAsync());
        await cluster.WatchToEndAsync(name);
    }
}
