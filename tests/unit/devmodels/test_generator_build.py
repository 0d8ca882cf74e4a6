"""The dev Gemma-2 builder, checked only through the public loaders the service uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from guard.devmodels import GENERIC_REPLY, SCRIPTED, scripted
from guard.devmodels.generator import DEV_GENERATOR_RECIPE, build_dev_generator
from guard.devmodels.tokenizer import GEMMA2_CHAT_TEMPLATE
from guard.models import read_dev_manifest

pytestmark = pytest.mark.unit

UNSEEN = (
    "Please book me a flight to Paris next Tuesday.",
    "My name is <PERSON_1>, my SSN is <US_SSN_1>; can you check my loan?",
    "How many moons does Jupiter have?",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dev_generator(tmp_path_factory.mktemp("dev") / "gemma-2")


@pytest.fixture(scope="module")
def tokenizer(built: Path) -> Any:
    return AutoTokenizer.from_pretrained(built)


@pytest.fixture(scope="module")
def model(built: Path) -> Any:
    return AutoModelForCausalLM.from_pretrained(built, dtype=torch.bfloat16).eval()


def _prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def _generate(model: Any, tokenizer: Any, prompts: list[str]) -> list[str]:
    batch = tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**batch, do_sample=False, max_new_tokens=40)
    new = output[:, batch["input_ids"].shape[1] :]
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert all(end_of_turn in row.tolist() for row in new), "every reply ends its turn"
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]


def test_manifest_and_files(built: Path) -> None:
    manifest = read_dev_manifest(built)
    assert manifest is not None
    assert manifest["recipe"] == DEV_GENERATOR_RECIPE
    assert manifest["kind"] == "generator"
    assert (built / "model.safetensors").is_file()


def test_config_is_gemma2_shaped(model: Any, tokenizer: Any) -> None:
    config = model.config
    assert config.model_type == "gemma2"
    assert config.layer_types == ["sliding_attention", "full_attention"]
    assert (config.attn_logit_softcapping, config.final_logit_softcapping) == (50.0, 30.0)
    assert config._attn_implementation == "eager"
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert sorted(model.generation_config.eos_token_id) == [tokenizer.eos_token_id, end_of_turn]


def test_tokenizer_matches_gemma_conventions(tokenizer: Any) -> None:
    special = (tokenizer.pad_token, tokenizer.eos_token, tokenizer.bos_token, tokenizer.unk_token)
    assert tokenizer.convert_tokens_to_ids(list(special)) == [0, 1, 2, 3]
    assert special == ("<pad>", "<eos>", "<bos>", "<unk>")
    assert tokenizer.padding_side == "left"
    assert tokenizer.chat_template == GEMMA2_CHAT_TEMPLATE
    assert tokenizer("Hi there").input_ids[0] == tokenizer.bos_token_id
    assert tokenizer("Hi there", add_special_tokens=False).input_ids[0] != tokenizer.bos_token_id
    text = "Grüße aus 東京 🙂 <PERSON_1> zyxwvut"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_chat_template_renders_like_gemma(tokenizer: Any) -> None:
    messages = [
        {"role": "user", "content": " Hi "},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
    ]
    assert _prompt(tokenizer, messages) == (
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    )
    with pytest.raises(Exception, match="System role not supported"):
        _prompt(tokenizer, [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])


@pytest.mark.parametrize("dialogue", SCRIPTED, ids=lambda dialogue: dialogue.name)
def test_scripted_prompt_gets_its_reply(model: Any, tokenizer: Any, dialogue: Any) -> None:
    assert _generate(model, tokenizer, [_prompt(tokenizer, [{"role": "user", "content": dialogue.prompt}])]) == [
        dialogue.reply
    ]


def test_unseen_prompts_get_the_generic_reply(model: Any, tokenizer: Any) -> None:
    prompts = [_prompt(tokenizer, [{"role": "user", "content": text}]) for text in UNSEEN]
    assert _generate(model, tokenizer, prompts) == [GENERIC_REPLY] * len(UNSEEN)


def test_folded_system_text_and_history_keep_the_scripted_reply(model: Any, tokenizer: Any) -> None:
    plain = scripted("plain")
    folded = [{"role": "user", "content": f"Be brief and kind.\n\n{plain.prompt}"}]
    history = [
        {"role": "user", "content": "What is the weather like?"},
        {"role": "assistant", "content": GENERIC_REPLY},
        {"role": "user", "content": plain.prompt},
    ]
    assert _generate(model, tokenizer, [_prompt(tokenizer, folded), _prompt(tokenizer, history)]) == [plain.reply] * 2


def test_left_padded_batch_matches_single_prompts(model: Any, tokenizer: Any) -> None:
    texts = [dialogue.prompt for dialogue in SCRIPTED] + list(UNSEEN)
    prompts = [_prompt(tokenizer, [{"role": "user", "content": text}]) for text in texts]
    expected = [dialogue.reply for dialogue in SCRIPTED] + [GENERIC_REPLY] * len(UNSEEN)
    assert _generate(model, tokenizer, prompts) == expected
