namespace Distill.Client.Tests;

/// <summary>The client must stay usable where the engine cannot be installed (dashboards, tools).</summary>
public class DependencyTests
{
    [Fact]
    public void The_client_does_not_reference_TorchSharp()
    {
        var references = typeof(DistillerClient).Assembly.GetReferencedAssemblies().Select(a => a.Name ?? "");
        Assert.DoesNotContain(references, name => name.StartsWith("TorchSharp", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(references, name => name is "Distill.Core" or "Distill.Adapters");
    }

    [Fact]
    public void No_TorchSharp_reaches_the_output_folder()
    {
        Assert.False(File.Exists(Path.Combine(AppContext.BaseDirectory, "TorchSharp.dll")));
        Assert.Empty(Directory.EnumerateFiles(AppContext.BaseDirectory, "*torch*", SearchOption.AllDirectories));
    }
}
