"""Static checks of a Triton model repository, run before any server (and where none can run).

Each check returns a list of problems (empty = fine) so one run reports everything at once:
- every config.pbtxt parses as a Triton `ModelConfig` (the protobuf tritonclient ships);
- every ensemble step maps existing tensors of the models it calls, with matching data types and
  dims, takes only tensors that exist at that point, and feeds every required input; a step after
  a decoupled step takes only that step's outputs (Triton's rule for decoupled models in ensembles);
- the LLM model a target serves exposes the tensors the scheduler sends and reads (runtime.contracts.LLM),
  as the CPU stand-in does;
- the BLS entry model (`ltr_bls`) has the ensemble's exact interface and makes text as
  `postprocessing` does (the same tokenizer parameters), so the two entry points cannot drift apart;
- every model of ours takes and returns exactly the tensors of its contract (runtime.contracts), and
  the ensemble wires them exactly as the contract's hop maps do (which `ltr_bls` follows in code).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from runtime import contracts
from runtime.contracts import LLM

ModelConfig = model_config_pb2.ModelConfig
DataType = model_config_pb2.DataType


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str
    dims: tuple[int, ...]
    optional: bool = False


def load_repository(repository: Path) -> tuple[dict[str, ModelConfig], list[str]]:
    """All configs of a repository by model name, and the problems met parsing them."""
    configs: dict[str, ModelConfig] = {}
    problems: list[str] = []
    for path in sorted(Path(repository).glob("*/config.pbtxt")):
        try:
            config = text_format.Parse(path.read_text(), ModelConfig())
        except text_format.ParseError as exc:
            problems.append(f"{path}: not a Triton ModelConfig: {exc}")
            continue
        if config.name and config.name != path.parent.name:
            problems.append(f"{path}: name {config.name!r} differs from its folder {path.parent.name!r}")
        configs[path.parent.name] = config
    return configs, problems


def _specs(tensors: Iterable) -> dict[str, TensorSpec]:
    return {
        t.name: TensorSpec(t.name, DataType.Name(t.data_type), tuple(t.dims), getattr(t, "optional", False))
        for t in tensors
    }


def inputs(config: ModelConfig) -> dict[str, TensorSpec]:
    return _specs(config.input)


def outputs(config: ModelConfig) -> dict[str, TensorSpec]:
    return _specs(config.output)


def dims_compatible(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Same rank, and each dimension equal or variable (-1) on either side."""
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b))


def _match(where: str, produced: TensorSpec, consumed: TensorSpec) -> list[str]:
    problems = []
    if produced.data_type != consumed.data_type:
        problems.append(f"{where}: {produced.name} is {produced.data_type}, {consumed.name} wants {consumed.data_type}")
    if not dims_compatible(produced.dims, consumed.dims):
        problems.append(f"{where}: {produced.name} dims {list(produced.dims)} vs {consumed.name} dims {list(consumed.dims)}")
    return problems


def ensemble_problems(name: str, configs: dict[str, ModelConfig]) -> list[str]:
    """Check ensemble `name` against the configs of the models its steps call."""
    ensemble = configs[name]
    available: dict[str, TensorSpec] = dict(inputs(ensemble))  # ensemble tensor name -> spec
    problems: list[str] = []
    decoupled_outputs: set[str] | None = None  # outputs of the latest decoupled step
    for index, step in enumerate(ensemble.ensemble_scheduling.step):
        where = f"{name} step {index} ({step.model_name})"
        model = configs.get(step.model_name)
        if model is None:
            problems.append(f"{where}: no model {step.model_name!r} in the repository")
            continue
        model_inputs, model_outputs = inputs(model), outputs(model)
        for key, value in step.input_map.items():
            if key not in model_inputs:
                problems.append(f"{where}: input_map key {key!r} is not an input of {step.model_name}")
            elif value not in available:
                problems.append(f"{where}: input_map value {value!r} is neither an ensemble input nor an earlier output")
            else:
                problems += _match(where, available[value], model_inputs[key])
            if decoupled_outputs is not None and value not in decoupled_outputs:
                problems.append(f"{where}: takes {value!r}, but a step after a decoupled step may only take its outputs")
        for key, spec in model_inputs.items():
            if not spec.optional and key not in step.input_map:
                problems.append(f"{where}: required input {key!r} is not mapped")
        produced = set()
        for key, value in step.output_map.items():
            if key not in model_outputs:
                problems.append(f"{where}: output_map key {key!r} is not an output of {step.model_name}")
                continue
            available[value] = TensorSpec(value, model_outputs[key].data_type, model_outputs[key].dims)
            produced.add(value)
        if model.model_transaction_policy.decoupled:
            decoupled_outputs = produced
    for out_name, spec in outputs(ensemble).items():
        if out_name not in available:
            problems.append(f"{name}: output {out_name!r} is produced by no step")
        else:
            problems += _match(f"{name} output", available[out_name], spec)
    return problems


# The entry models that must speak the ensemble's interface, and the model whose text they must make.
ENTRY_TWINS = {"ltr_bls": "ensemble"}
TEXT_PARAMETERS = ("tokenizer_path", "skip_special_tokens")


def entry_interface_problems(reference: ModelConfig, candidate: ModelConfig) -> list[str]:
    """`candidate` takes and returns exactly what `reference` does: the same input and output names,
    data types, dims and optional flags, and the same max_batch_size."""
    problems: list[str] = []
    for kind, ref, cand in (("input", inputs(reference), inputs(candidate)),
                            ("output", outputs(reference), outputs(candidate))):
        for name in sorted(set(ref) | set(cand)):
            if name not in cand:
                problems.append(f"{candidate.name} lacks {reference.name}'s {kind} {name!r}")
            elif name not in ref:
                problems.append(f"{candidate.name} has {kind} {name!r}, which {reference.name} has not")
            elif ref[name] != cand[name]:
                problems.append(f"{candidate.name} {kind} {cand[name]} differs from {reference.name}'s {ref[name]}")
    if reference.max_batch_size != candidate.max_batch_size:
        problems.append(f"{candidate.name} max_batch_size {candidate.max_batch_size} differs from "
                        f"{reference.name}'s {reference.max_batch_size}")
    return problems


def entry_problems(configs: dict[str, ModelConfig], text_model: str = "postprocessing") -> list[str]:
    """Each entry model present against its twin, and its text parameters against `text_model`'s."""
    problems: list[str] = []
    for entry, twin in ENTRY_TWINS.items():
        if entry not in configs or twin not in configs:
            continue
        problems += entry_interface_problems(configs[twin], configs[entry])
        if text_model in configs:
            for key in TEXT_PARAMETERS:
                mine, theirs = (configs[m].parameters[key].string_value if key in configs[m].parameters else None
                                for m in (entry, text_model))
                if mine != theirs:
                    problems.append(f"{entry} parameter {key!r} is {mine!r}, {text_model}'s is {theirs!r}: "
                                    "their text would differ")
    return problems


# Each model of ours by its contract (the LLM is held to its contract by llm_interface_problems).
MODEL_CONTRACTS = {
    "ensemble": contracts.Entry, "ltr_bls": contracts.Entry, "preprocessing": contracts.Preprocessing,
    "length_predictor": contracts.Predictor, "ltr_scheduler": contracts.Scheduler,
    "postprocessing": contracts.Postprocessing,
}
ENSEMBLE = "ensemble"
# The ensemble's wiring as the contract says it: ((producer, tensor), (consumer, tensor)) wires, where
# the ensemble itself produces its inputs and consumes its outputs.
CONTRACT_WIRING = {
    ((producer, out), (consumer, into))
    for producer, consumer, hop in (
        (ENSEMBLE, "preprocessing", contracts.ENTRY_TO_PREPROCESSING),
        ("preprocessing", "ltr_scheduler", contracts.PREPROCESSING_TO_SCHEDULER),
        (ENSEMBLE, "ltr_scheduler", contracts.ENTRY_TO_SCHEDULER),
        ("ltr_scheduler", "postprocessing", contracts.SCHEDULER_TO_POSTPROCESSING),
        ("postprocessing", ENSEMBLE, contracts.POSTPROCESSING_TO_ENTRY),
    )
    for out, into in hop.items()
}


def contract_problems(configs: dict[str, ModelConfig]) -> list[str]:
    """Each of our models present names exactly its contract's tensors; the ensemble, if present,
    wires them exactly as CONTRACT_WIRING does."""
    problems: list[str] = []
    for model, contract in MODEL_CONTRACTS.items():
        if model not in configs:
            continue
        for kind, declared, named in (("inputs", inputs(configs[model]), contract.INPUTS),
                                      ("outputs", outputs(configs[model]), contract.OUTPUTS)):
            if set(declared) != set(named):
                problems.append(f"{model} {kind} {sorted(declared)} differ from runtime.contracts.{contract.__name__}'s "
                                f"{sorted(named)}")
    if ENSEMBLE in configs:
        wiring = ensemble_wiring(configs[ENSEMBLE])
        for edge in sorted(wiring ^ CONTRACT_WIRING):
            side = "the ensemble" if edge in wiring else "the contract"
            problems.append(f"{ENSEMBLE}: only {side} wires {edge[0]} -> {edge[1]}")
    return problems


Wire = tuple[tuple[str, str], tuple[str, str]]  # (producer, tensor), (consumer, tensor)


def ensemble_wiring(ensemble: ModelConfig) -> set[Wire]:
    """The ensemble's steps as wires, its internal tensor names resolved to the models' own."""
    origin = {name: (ENSEMBLE, name) for name in inputs(ensemble)}  # ensemble tensor -> who made it
    wiring: set[Wire] = set()
    for step in ensemble.ensemble_scheduling.step:
        for key, value in step.input_map.items():
            if value in origin:
                wiring.add((origin[value], (step.model_name, key)))
        for key, value in step.output_map.items():
            origin[value] = (step.model_name, key)
    for name in outputs(ensemble):
        if name in origin:
            wiring.add((origin[name], (ENSEMBLE, name)))
    return wiring


def repository_problems(repository: Path) -> list[str]:
    """Parse every config, check every ensemble of `repository`, the entry models and the contracts."""
    configs, problems = load_repository(repository)
    for name, config in configs.items():
        if config.platform == "ensemble":
            problems += ensemble_problems(name, configs)
    return problems + entry_problems(configs) + contract_problems(configs)


@dataclass(frozen=True)
class LlmCalls:
    """What the scheduler's BLS client sends to and reads from the LLM model."""

    always: frozenset[str]  # inputs on every call
    sometimes: frozenset[str]  # inputs passed through when the client gave them, and the call flags
    reads: frozenset[str]


SCHEDULER_LLM_CALLS = LlmCalls(
    always=frozenset(LLM.SENT_ON_EVERY_CALL),
    sometimes=frozenset((*LLM.PASSED_THROUGH, LLM.STREAMING, LLM.STOP)),
    reads=frozenset(LLM.OUTPUTS_READ),
)


def llm_interface_problems(
    reference: ModelConfig, candidate: ModelConfig, calls: LlmCalls = SCHEDULER_LLM_CALLS
) -> list[str]:
    """`candidate` (e.g. the GPU tensorrt_llm) serves the scheduler's calls exactly as `reference`
    (the CPU stand-in) does: same names, data types and dims; required only where always sent."""
    problems: list[str] = []
    ref_in, cand_in = inputs(reference), inputs(candidate)
    for name in sorted(calls.always | calls.sometimes):
        if name not in ref_in:
            problems.append(f"reference {reference.name} lacks input {name!r} the scheduler sends")
        if name not in cand_in:
            problems.append(f"{candidate.name} lacks input {name!r} the scheduler sends")
        elif name in ref_in:
            problems += _match(candidate.name, ref_in[name], cand_in[name])
    for name, spec in cand_in.items():
        if not spec.optional and name not in calls.always:
            problems.append(f"{candidate.name} requires {name!r}, which the scheduler does not always send")
    ref_out, cand_out = outputs(reference), outputs(candidate)
    for name in sorted(calls.reads):
        if name not in cand_out:
            problems.append(f"{candidate.name} lacks output {name!r} the scheduler reads")
        elif name in ref_out:
            problems += _match(candidate.name, ref_out[name], cand_out[name])
    if (reference.max_batch_size > 0) != (candidate.max_batch_size > 0):
        problems.append("max_batch_size > 0 on one side only: the batch dimension would differ")
    if candidate.model_transaction_policy.decoupled != reference.model_transaction_policy.decoupled:
        problems.append(f"{candidate.name}: decoupled differs from {reference.name} (streaming BLS needs decoupled)")
    return problems
