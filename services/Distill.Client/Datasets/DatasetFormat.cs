namespace Distill.Client;

public enum DatasetFormat
{
    /// <summary>Detected from the folder's files.</summary>
    Detect,
    /// <summary>MNIST-style IDX files, gzipped or not.</summary>
    Idx,
    Cifar10,
    Cifar100,
    /// <summary>root/{train,test}/CLASS/*.png|jpg</summary>
    ImageFolder,
}
