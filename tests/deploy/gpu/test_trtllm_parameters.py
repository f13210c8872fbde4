"""The rendered `tensorrt_llm` config against NVIDIA's parameter list for the pinned backend (kept in
deploy/gpu/tensorrt_llm/template_parameters.json), in both directions, and the refresh that reads
that list from the template and the backend's C++ sources."""

from __future__ import annotations

import json
import subprocess

import pytest

from deploy.gpu.bundle import TENSORRT_LLM_VERSION, bundle_problems, render_gpu_bundle
from deploy.gpu.trtllm_parameters import (
    TEMPLATE_PATH,
    config_parameters,
    load_template_parameters,
    main,
    read_sources,
    template_parameters,
    unguarded_parameter_reads,
)
from deploy.repository import read_config, write_config
from tests.deploy.gpu.test_bundle import local_settings

# What the refresh found in NVIDIA's backend (model_instance_state.cc): read with no default.
GUIDED_DECODING = {"tokenizer_dir", "guided_decoding_backend", "xgrammar_tokenizer_info_path"}


def rendered_llm_config(tmp_path):
    bundle = render_gpu_bundle(tmp_path / "b", local_settings(tmp_path))
    return bundle, bundle / "model_repository" / "tensorrt_llm" / "config.pbtxt"


def test_the_list_is_declared_for_the_pinned_version_and_names_its_origin():
    template = load_template_parameters()
    assert template.version == TENSORRT_LLM_VERSION
    assert template.origin and len(template.known) > 40
    assert GUIDED_DECODING | {"gpt_model_type"} == set(template.required)
    assert set(template.required) <= set(template.known)


def test_rendered_config_has_every_required_key_and_no_unknown_one(tmp_path):
    _, path = rendered_llm_config(tmp_path)
    params = config_parameters(read_config(path))
    template = load_template_parameters()
    assert template.problems(params) == []
    assert set(template.required) <= set(params) <= set(template.known) | set(template.optional)
    assert all(params[k] == "" for k in GUIDED_DECODING)  # empty = guided decoding off
    assert params["gpt_model_path"]  # empty would fail too: "Both encoder and decoder model paths are empty"


@pytest.mark.parametrize("change, message", [
    (lambda c: c.parameters.pop("tokenizer_dir"), "lacks parameter 'tokenizer_dir'"),
    (lambda c: c.parameters["tokenizer_path"].MergeFrom(c.parameters["gpt_model_type"]), "'tokenizer_path' is not in"),
])
def test_a_missing_required_or_an_unknown_key_fails_the_bundle_check(tmp_path, change, message):
    bundle, path = rendered_llm_config(tmp_path)
    config = read_config(path)
    change(config)
    write_config(config, path)
    assert any(message in p for p in bundle_problems(bundle)), bundle_problems(bundle)


CPP = r'''
std::string A() { return model_state_->GetParameter<std::string>("plain"); }
void B() {
    try { x = model_state_->GetParameter<int32_t>("guarded"); }
    catch (std::exception const& e) { LOG("not \"found\" {"); }  // a brace in a string: {
    /* } a brace in a comment */
    if (y) {
        try
        {
            if (z) { w = model_state_->GetParameter<bool>("nested"); }
        }
        catch (...) {}
        v = model_state_->GetParameter<std::vector<int32_t>>("after_try");
    }
    auto s = GetParameter<std::string>(fieldName);  // not a literal: not a key
}
'''


def test_unguarded_reads_are_the_ones_outside_every_try_block():
    assert unguarded_parameter_reads(CPP) == ["after_try", "plain"]


def test_template_parameters_skips_commented_entries():
    text = '''max_batch_size: ${triton_max_batch_size}
parameters: {
  key: "a"
  value: { string_value: "${a}" }
}
# parameters: {
#   key: "gone"
#   value: { string_value: "${gone}" }
# }
parameters { key: "b" value: { string_value: "no" } }
'''
    assert template_parameters(text) == {"a": "${a}", "b": "no"}
    with pytest.raises(ValueError):
        template_parameters("name: \"x\"")


def _source_tree(root, prefix):
    """A checkout in either layout: TensorRT-LLM (triton_backend/...) or tensorrtllm_backend (root)."""
    template = root / prefix / TEMPLATE_PATH
    template.parent.mkdir(parents=True)
    template.write_text('parameters: { key: "plain" value: { string_value: "${plain}" } }\n'
                        'parameters: { key: "guarded" value: { string_value: "" } }\n'
                        'parameters: { key: "after_try" value: { string_value: "" } }\n'
                        'parameters: { key: "nested" value: { string_value: "" } }\n')
    src = root / prefix / "inflight_batcher_llm" / "src"
    src.mkdir(parents=True)
    (src / "model_instance_state.cc").write_text(CPP)
    (src / "model_state.cc").write_text('void C() { try { GetParameter<std::string>("guarded"); } catch (...) {} }\n'
                                        'void D() { try { GetParameter<int>("poll_ms"); } catch (...) {} }')
    return root


@pytest.mark.parametrize("prefix", ["triton_backend", "."])
def test_refresh_from_a_checkout_in_either_layout(tmp_path, prefix):
    root = _source_tree(tmp_path / "src", prefix)
    out = tmp_path / "params.json"
    assert main(["--source", str(root), "--version", "9.9.9", "--origin", "test tree", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["version"] == "9.9.9" and data["origin"] == "test tree"
    assert data["optional"] == ["poll_ms"]  # read with a default, not in the template: valid all the same
    assert data["required"] == ["after_try", "plain"]
    assert set(data["known"]) == {"plain", "guarded", "after_try", "nested"}


def test_refresh_from_a_git_ref(tmp_path):
    root = _source_tree(tmp_path / "repo", "triton_backend")
    git = ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    subprocess.run([*git, "tag", "v9"], check=True)
    params = read_sources("9", "git", git_dir=root / ".git", ref="v9")
    assert params.required == ("after_try", "plain")


def test_refresh_refuses_a_required_key_the_template_lacks(tmp_path):
    root = _source_tree(tmp_path / "src", "triton_backend")
    (root / "triton_backend" / "inflight_batcher_llm" / "src" / "model_state.cc").write_text(
        'void D() { GetParameter<std::string>("surprise"); }')
    with pytest.raises(ValueError, match="surprise"):
        read_sources("9", "x", source=root)


def test_optional_keys_pass_and_a_misspelt_one_still_fails():
    """recv_poll_period_ms: the backend reads it (in a try block), NVIDIA's template does not carry it."""
    template = load_template_parameters()
    assert "recv_poll_period_ms" in template.optional and "recv_poll_period_ms" not in template.known
    base = {k: "" for k in template.required}
    assert template.problems({**base, "recv_poll_period_ms": "1"}) == []
    assert template.problems({**base, "recv_poll_period": "1"}) == [
        f"tensorrt_llm parameter 'recv_poll_period' is not in TensorRT-LLM {template.version}'s template nor read by "
        "its backend"]


def test_parameter_reads_finds_every_literal_key():
    from deploy.gpu.trtllm_parameters import parameter_reads

    assert parameter_reads(CPP) == ["after_try", "guarded", "nested", "plain"]
