"""Cross-language check of the gRPC kernel service.

Proves that any language can use the service from nothing but its contract: the Python
message classes are generated at run time from protos/distill/kernel/v1/kernel.proto with
protoc, the stubs are written by hand on plain grpcio, and the streamed Gram blocks of the
fully connected ReLU NTK / NNGP (NTK parameterisation) are checked against an independent
numpy implementation. Also checks that a malformed tensor is refused with INVALID_ARGUMENT.

Needs only Debian 12 packages: python3-grpcio python3-protobuf protobuf-compiler python3-numpy.

usage: /usr/bin/python3 tests/python/kernel_client_check.py HOST:PORT   (plain HTTP/2)
       DISTILL_API_KEY=KEY sends "authorization: Bearer KEY".
"""
import importlib
import os
import subprocess
import sys
import tempfile

import grpc
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVICE = "/distill.kernel.v1.KernelService/"


def load_messages(out_dir):
    """Generates kernel_pb2 with protoc (3.21 accepts proto3 optional) and imports it."""
    subprocess.run(["protoc", f"--proto_path={os.path.join(REPO, 'protos')}", f"--python_out={out_dir}",
                    "distill/kernel/v1/kernel.proto"], check=True)
    sys.path.insert(0, out_dir)
    return importlib.import_module("distill.kernel.v1.kernel_pb2")


def tensor(pb, a):
    a = np.ascontiguousarray(a, dtype="<f8")
    return pb.Tensor(shape=a.shape, dtype=pb.DATA_TYPE_FLOAT64, data=a.tobytes())


def from_tensor(pb, t):
    assert t.dtype == pb.DATA_TYPE_FLOAT64, f"expected float64 result, got dtype {t.dtype}"
    return np.frombuffer(t.data, dtype="<f8").reshape(tuple(t.shape))


def reference(x1, x2, kind="ntk", depth=1, w_std=np.sqrt(2.0), b_std=0.1):
    """Fully connected ReLU NTK / NNGP, NTK parameterisation, by the arc-cosine recursion."""
    d = x1.shape[1]
    w2, b2 = w_std ** 2, b_std ** 2
    sigma = w2 * x1 @ x2.T / d + b2
    q1 = w2 * np.sum(x1 * x1, axis=1) / d + b2
    q2 = w2 * np.sum(x2 * x2, axis=1) / d + b2
    theta_k = sigma
    for _ in range(depth):
        norm = np.sqrt(np.outer(q1, q2))
        angle = np.arccos(np.clip(sigma / norm, -1.0, 1.0))
        sigma_hat = norm * (np.sin(angle) + (np.pi - angle) * np.cos(angle)) / (2 * np.pi)
        sigma_dot = (np.pi - angle) / (2 * np.pi)
        new_sigma = w2 * sigma_hat + b2
        theta_k = new_sigma + w2 * sigma_dot * theta_k
        sigma = new_sigma
        q1, q2 = w2 * q1 / 2 + b2, w2 * q2 / 2 + b2
    return theta_k if kind == "ntk" else sigma


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    key = os.environ.get("DISTILL_API_KEY")
    metadata = [("authorization", f"Bearer {key}")] if key else None

    with tempfile.TemporaryDirectory() as tmp, grpc.insecure_channel(sys.argv[1]) as channel:
        pb = load_messages(tmp)
        get_info = channel.unary_unary(SERVICE + "GetServerInfo", request_serializer=pb.GetServerInfoRequest.SerializeToString,
                                       response_deserializer=pb.ServerInfo.FromString)
        compute_gram = channel.unary_stream(SERVICE + "ComputeGram", request_serializer=pb.ComputeGramRequest.SerializeToString,
                                            response_deserializer=pb.GramBlock.FromString)

        try:
            info = get_info(pb.GetServerInfoRequest(), metadata=metadata, timeout=30)
        except grpc.RpcError as e:
            sys.exit(f"GetServerInfo failed: {e.code().name}: {e.details()}")
        print(f"server {info.version}: device {info.device}, {info.threads} threads, kernels {', '.join(info.kernels)}")

        rng = np.random.default_rng(1234)
        x1, x2 = rng.standard_normal((7, 5)), rng.standard_normal((4, 5))
        cases = [("NTK, depth 1", pb.KernelSpec(), reference(x1, x2)),
                 ("NNGP, depth 1", pb.KernelSpec(fully_connected=pb.FullyConnectedSpec(kind=pb.KERNEL_KIND_NNGP)), reference(x1, x2, kind="nngp")),
                 ("NTK, depth 2", pb.KernelSpec(fully_connected=pb.FullyConnectedSpec(depth=2)), reference(x1, x2, depth=2))]
        worst, blocks = 0.0, 0
        for name, spec, expected in cases:
            request = pb.ComputeGramRequest(kernel=spec, x1=pb.Operand(inline=tensor(pb, x1)), x2=pb.Operand(inline=tensor(pb, x2)))
            got = np.full(expected.shape, np.nan)
            for block in compute_gram(request, metadata=metadata, timeout=60):
                assert block.total_rows == x1.shape[0], f"{name}: total_rows {block.total_rows}"
                rows = from_tensor(pb, block.block)
                got[block.row_start:block.row_start + rows.shape[0]] = rows
                blocks += 1
            assert not np.isnan(got).any(), f"{name}: the blocks do not cover every row"
            error = np.max(np.abs(got - expected) / np.abs(expected))
            print(f"{name}: max relative error {error:.1e}")
            assert error < 1e-10, f"{name}: max relative error {error:.3e} >= 1e-10"
            worst = max(worst, error)

        bad = pb.Tensor(shape=[2, 3], dtype=pb.DATA_TYPE_FLOAT64, data=bytes(40))  # 40 bytes, 48 needed
        try:
            list(compute_gram(pb.ComputeGramRequest(x1=pb.Operand(inline=bad), x2=pb.Operand(inline=tensor(pb, x2[:, :3]))),
                              metadata=metadata, timeout=30))
            raise AssertionError("a tensor with the wrong byte length was accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"expected INVALID_ARGUMENT, got {e.code().name}: {e.details()}"
            assert "x1.inline.data" in e.details(), f"error does not name x1.inline.data: {e.details()}"
            print(f"invalid request refused: INVALID_ARGUMENT: {e.details()}")

    print(f"python client check: {blocks} Gram blocks checked against numpy, max relative error {worst:.1e}")


if __name__ == "__main__":
    main()
