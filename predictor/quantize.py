"""Weight-only int8 for the committed ONNX file: small in git, fp32 at run time.

Large MatMul/Gemm/Gather weights are stored as int8 with per-channel symmetric scales and a
DequantizeLinear node in front. Unlike onnxruntime's dynamic quantization, activations stay
fp32: onnxruntime folds the DequantizeLinear nodes into fp32 constants at load time
(session option `session.disable_quant_qdq=1`, set by runtime.length_predictor), so a prompt's score
does not depend on its padding or on the other prompts in its batch, and CPU speed is fp32 speed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

MIN_ELEMENTS = 16384


def _channel_axis(node: onnx.NodeProto, input_index: int) -> int | None:
    """Axis holding output channels of a weight input, or None when not a weight input."""
    if node.op_type == "MatMul" and input_index == 1:
        return 1
    if node.op_type == "Gemm" and input_index == 1:
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    if node.op_type == "Gather" and input_index == 0:
        return 0
    return None


def quantize_weights_int8(src: str | Path, dst: str | Path, min_elements: int = MIN_ELEMENTS) -> dict:
    """Rewrite src into dst with int8 weights; returns {n_weights, fp32_bytes, int8_bytes}."""
    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    axes: dict[str, int] = {}
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in inits:
                axis = _channel_axis(node, k)
                if axis is not None and axes.get(name, axis) == axis:
                    axes[name] = axis
                elif name in axes:  # used with two different layouts: leave it fp32
                    axes[name] = -1
    new_nodes, stats = [], {"n_weights": 0, "fp32_bytes": 0, "int8_bytes": 0}
    for name, axis in axes.items():
        w = numpy_helper.to_array(inits[name])
        if axis < 0 or w.dtype != np.float32 or w.ndim != 2 or w.size < min_elements:
            continue
        reduce_axis = 1 - axis
        scale = np.abs(w).max(axis=reduce_axis) / 127.0
        scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
        q = np.clip(np.round(w / np.expand_dims(scale, reduce_axis)), -127, 127).astype(np.int8)
        graph.initializer.remove(inits[name])
        graph.initializer.extend([
            numpy_helper.from_array(q, f"{name}_int8"),
            numpy_helper.from_array(scale, f"{name}_scale"),
            numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f"{name}_zero_point"),
        ])
        new_nodes.append(helper.make_node(
            "DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero_point"], [name],
            name=f"{name}_dequantize", axis=axis,
        ))
        stats["n_weights"] += 1
        stats["fp32_bytes"] += w.nbytes
        stats["int8_bytes"] += q.nbytes + scale.nbytes * 2
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(new_nodes + nodes)  # dequantize first: keeps the graph topologically sorted
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return stats


def dequantize_weights(src: str | Path, dst: str | Path) -> int:
    """Inverse rewrite: fold each weight's DequantizeLinear back into an fp32 initializer, giving a
    plain fp32 ONNX file (what TensorRT and the GPU path take). Returns the number folded."""
    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    folded, keep = 0, []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(n in inits for n in node.input):
            q, scale = (numpy_helper.to_array(inits[n]) for n in node.input[:2])
            zp = numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2 else 0
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            shape[axis] = -1
            w = (q.astype(np.float32) - np.reshape(zp, shape).astype(np.float32)) * np.reshape(scale, shape)
            for n in node.input:
                graph.initializer.remove(inits.pop(n))
            graph.initializer.append(numpy_helper.from_array(w.astype(np.float32), node.output[0]))
            folded += 1
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return folded


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="int8 weight-only <-> fp32 ONNX weights")
    ap.add_argument("mode", choices=["quantize", "dequantize"])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    args = ap.parse_args()
    if args.mode == "quantize":
        print(quantize_weights_int8(args.src, args.dst))
    else:
        print(f"folded {dequantize_weights(args.src, args.dst)} weights into {args.dst}")


if __name__ == "__main__":
    main()
