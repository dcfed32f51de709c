using Distill.Adapters.Conversions;
using Distill.Core.Data;
using Distill.Core.Errors;
using Distill.DistillerService.Configuration;
using Distill.Protos.Distiller.V1;
using Microsoft.Extensions.Options;

namespace Distill.DistillerService.Datasets;

/// <summary>The folders directly under the data root whose format the loader recognises.</summary>
public sealed class DatasetFolders(IOptions<DistillerOptions> options)
{
    public ListDatasetsResponse List()
    {
        var root = options.Value.DataRoot;
        if (string.IsNullOrEmpty(root))
            throw new StateConflictException(ErrorReasons.DataRootNotConfigured, "Distiller:DataRoot", "the distiller has no Distiller:DataRoot configured");
        var response = new ListDatasetsResponse();
        if (!Directory.Exists(root)) return response;
        foreach (var folder in Directory.EnumerateDirectories(root).Order(StringComparer.Ordinal))
        {
            if (DatasetLoader.DetectFormat(folder) is not { } format) continue;
            response.Datasets.Add(new DatasetFolder { Path = Path.GetFileName(folder), Format = EnumMessages.ToDatasetFormat(format) });
        }
        return response;
    }
}
