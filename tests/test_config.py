"""Typed settings: camelCase on the wire, invalid fields named, old values kept."""

from lsp_llm.config import Settings, parse_settings, settings_to_wire


def test_camel_case_fields_parse():
    s, errors = parse_settings(
        {
            "model": "Qwen/Qwen2.5-Coder-1.5B-Instruct",
            "draftModel": "Qwen/Qwen2.5-Coder-0.5B-Instruct",
            "completion": {
                "maxNewTokens": 64,
                "multiline": "never",
                "fimOrder": "spm",
                "promptStyle": "prefix",
            },
            "chat": {"temperature": 0, "topP": 0.5},
            "speculation": {"mode": "promptLookup", "numTokens": 10},
        }
    )
    assert errors == []
    assert s.draft_model == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    assert s.completion.max_new_tokens == 64 and s.completion.multiline == "never"
    assert s.completion.fim_order == "spm" and s.completion.prompt_style == "prefix"
    assert s.chat.temperature == 0.0 and isinstance(s.chat.temperature, float)
    assert s.speculation.mode == "promptLookup" and s.speculation.num_tokens == 10


def test_invalid_fields_are_named_and_previous_values_kept():
    base, _ = parse_settings({"completion": {"maxNewTokens": 50}})
    s, errors = parse_settings(
        {
            "completion": {
                "maxNewTokens": -3,
                "contextTokens": 900,
                "fimOrder": "mps",
                "promptStyle": "fill",
            },
            "quantization": "3bit",
            "trustRemoteCode": "yes",
            "device": "gpu",
            "bogus": 1,
            "chat": 5,
        },
        base,
    )
    joined = "\n".join(errors)
    for name in (
        "completion.maxNewTokens",
        "completion.fimOrder",
        "completion.promptStyle",
        "quantization",
        "trustRemoteCode",
        "device",
        "bogus",
        "chat",
    ):
        assert name in joined
    assert s.completion.max_new_tokens == 50  # kept from base
    assert s.completion.context_tokens == 900  # the valid sibling still applies
    assert s.quantization == "auto" and s.trust_remote_code is False


def test_round_trip_through_wire_form():
    s = Settings()
    again, errors = parse_settings(settings_to_wire(s))
    assert errors == [] and again == s
    assert "maxNewTokens" in settings_to_wire(s)["completion"]


def test_not_an_object():
    s, errors = parse_settings(["model"])
    assert s == Settings() and errors and "expected an object" in errors[0]


def test_non_finite_numbers_are_refused():
    import math

    from lsp_llm.config import parse_settings

    for bad in (math.nan, math.inf, -math.inf):
        settings, errors = parse_settings({"chat": {"temperature": bad, "topP": bad}})
        assert len(errors) == 2 and settings.chat.temperature == 0.2
