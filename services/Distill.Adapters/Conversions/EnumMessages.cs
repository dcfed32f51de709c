using Distill.Core.Data;
using Distill.Core.Errors;
using Distill.Protos.Kernel.V1;
using CorePoolLoss = Distill.Core.FeaturePool.PoolLoss;
using CoreSolveMethod = Distill.Core.Regression.SolveMethod;

namespace Distill.Adapters.Conversions;

/// <summary>The API's enums to and from the engine's names for the same things.</summary>
public static class EnumMessages
{
    public static CorePoolLoss ToCore(this PoolLoss loss, string field = "loss") => loss switch
    {
        PoolLoss.Unspecified or PoolLoss.Mse => CorePoolLoss.Mse,
        PoolLoss.Platt => CorePoolLoss.Platt,
        _ => throw new InvalidFieldException(field, $"unknown loss {(int)loss}"),
    };

    public static PoolLoss ToMessage(this CorePoolLoss loss) => loss == CorePoolLoss.Platt ? PoolLoss.Platt : PoolLoss.Mse;

    public static SolveMethod ToMessage(this CoreSolveMethod method) => method switch
    {
        CoreSolveMethod.Cholesky => SolveMethod.Cholesky,
        CoreSolveMethod.CholeskyWithJitter => SolveMethod.CholeskyWithJitter,
        CoreSolveMethod.LuFallback => SolveMethod.LuFallback,
        _ => SolveMethod.Unspecified,
    };

    public static CoreSolveMethod ToCore(this SolveMethod method) => method switch
    {
        SolveMethod.CholeskyWithJitter => CoreSolveMethod.CholeskyWithJitter,
        SolveMethod.LuFallback => CoreSolveMethod.LuFallback,
        _ => CoreSolveMethod.Cholesky,
    };

    /// <summary>The loader's format name; null means detect.</summary>
    public static string? ToCore(this DatasetFormat format, string field = "format") => format switch
    {
        DatasetFormat.Unspecified => null,
        DatasetFormat.Idx => DatasetLoader.IdxFormat,
        DatasetFormat.Cifar10 => DatasetLoader.Cifar10Format,
        DatasetFormat.Cifar100 => DatasetLoader.Cifar100Format,
        DatasetFormat.ImageFolder => DatasetLoader.FolderFormat,
        _ => throw new InvalidFieldException(field, $"unknown dataset format {(int)format}"),
    };

    public static DatasetFormat ToDatasetFormat(string? format) => format switch
    {
        DatasetLoader.IdxFormat => DatasetFormat.Idx,
        DatasetLoader.Cifar10Format => DatasetFormat.Cifar10,
        DatasetLoader.Cifar100Format => DatasetFormat.Cifar100,
        DatasetLoader.FolderFormat => DatasetFormat.ImageFolder,
        _ => DatasetFormat.Unspecified,
    };
}
