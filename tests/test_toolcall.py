"""Tool-call actions: parsing, the chat template's rendering, token masks and rewards.

The tokenizer is SmolLM2's with a Hermes/Qwen2.5-style chat template (tools in the system
message, tool results as ``<tool_response>`` user turns), the layout of Qwen2.5-Instruct.
"""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import research_env  # noqa: F401  (registers SearchQA-v0)
from research_env.actions import Answer, Invalid, Search
from research_env.toolcall import SEARCH_TOOL, ToolCallActions, ToolCallFormat

HERMES_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n\n{% endif %}"
    "# Tools\n<tools>{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools>"
    "<|im_end|>\n{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% if not tools %}<|im_start|>system\n{{ m['content'] }}"
    "<|im_end|>\n{% endif %}"
    "{% elif m['role'] == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m['content'] }}\n"
    "</tool_response><|im_end|>\n"
    "{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CALL = "<think> I need the capital. </think>\n<tool_call>\n{}\n</tool_call>"


def call(query: object, name: str = "search") -> str:
    return CALL.format(json.dumps({"name": name, "arguments": {"query": query}}))


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    pytest.importorskip("transformers")
    from research_agents.models import TINY, load_tokenizer

    tok = load_tokenizer(TINY)
    tok.chat_template = HERMES_TEMPLATE
    return tok


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        (call("capital of Peru"), Search("capital of Peru", think="I need the capital.")),
        (call("  capital \n of  Peru "), Search("capital of Peru", think="I need the capital.")),
        (
            '<tool_call>{"name": "search", "arguments": "{\\"query\\": \\"x\\"}"}</tool_call>',
            Search("x"),
        ),
        (call("q", name="browse"), Invalid("unknown_tool")),
        (call(3), Invalid("bad_tool_call")),
        ("<tool_call>{not json}</tool_call>", Invalid("bad_tool_call")),
        ("<tool_call>[1, 2]</tool_call>", Invalid("bad_tool_call")),
        ('<tool_call>{"name": "search"', Invalid("unclosed_tag")),
        (call(""), Invalid("empty_query")),
        ("<search>capital of Peru</search>", Invalid("search_tag_in_tool_mode")),
        ("no action at all", Invalid("no_action_tag")),
    ],
)
def test_parse(segment, expected):
    got = ToolCallFormat().parse(segment)
    if isinstance(expected, Invalid):
        assert isinstance(got, Invalid) and got.reason == expected.reason, got
    else:
        assert got == expected


def test_answers_and_query_cap():
    fmt = ToolCallFormat()
    got = fmt.parse("<think>ok</think><answer> It is \\boxed{Lima} </answer>")
    assert isinstance(got, Answer) and got.text == "Lima" and got.boxed
    long = fmt.parse(call("word " * 100), max_query_chars=20)
    assert isinstance(long, Search) and long.truncated
    assert long.query == ("word " * 100)[:20].strip()  # as the tag parser cuts <search>


def test_prompt_renders_the_schema_with_the_chat_template(tokenizer):
    fmt = ToolCallFormat(tokenizer)
    prompt = fmt.render_prompt("What is the capital of Peru?")
    assert json.dumps(SEARCH_TOOL) in prompt  # the template's tojson of our schema
    assert prompt.endswith("What is the capital of Peru?<|im_end|>\n<|im_start|>assistant\n")
    assert fmt.observation("R") == (
        "<|im_end|>\n<|im_start|>user\n<tool_response>\nR\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # result text cannot close the tool message early
    assert "</tool_response>\n</tool_response>" not in fmt.observation("x </tool_response> y")


def test_a_template_without_tool_messages_is_refused(tokenizer):
    import copy

    bare = copy.deepcopy(tokenizer)
    bare.chat_template = (
        "{%- for m in messages %}{%- if m['role'] != 'tool' %}{{ m['content'] }}{%- endif %}"
        "{%- endfor %}"
    )
    with pytest.raises(ValueError, match="does not render an assistant message followed by"):
        ToolCallFormat(bare)


def play(env, actions):  # type: ignore[no-untyped-def]
    obs, _ = env.reset(options={"index": 0})
    out = [obs]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return out


def test_transcript_is_the_chat_templates_conversation_token_for_token(tokenizer):
    env = ToolCallActions(gym.make("SearchQA-v0", split="dev", tokenizer=tokenizer, top_k=2))
    question = env.unwrapped.examples[0].question
    first, answer = (
        call("capital of the United Arab Emirates"),
        "<answer>\\boxed{Abu Dhabi}</answer>",
    )
    steps = play(env, [first, answer])
    prompt, (obs1, *_), (_, reward, terminated, _, _) = steps[0]["prompt"], steps[1], steps[2]
    assert terminated and reward == 1.0
    # The rollout's ids: prompt, sampled segment (mask 1), observation (mask 0), segment (mask 1).
    enc = lambda t: tokenizer.encode(t, add_special_tokens=False)  # noqa: E731
    pieces = [(prompt, None), (first, 1), (obs1["observation"], 0), (answer, 1)]
    ids = [i for text, _ in pieces for i in enc(text)]
    mask = [m for text, m in pieces[1:] for _ in enc(text)]
    assert len(mask) == len(ids) - len(enc(prompt))
    assert (
        tokenizer.decode([i for i, m in zip(ids[len(enc(prompt)) :], mask) if m == 0])
        == (obs1["observation"])
    )
    # ...and the text they spell is the template's rendering of the same chat.
    conversation = [
        *ToolCallFormat(tokenizer).messages(question),
        {"role": "assistant", "content": first},
        {
            "role": "tool",
            "content": obs1["observation"]
            .split("<tool_response>\n")[1]
            .split("\n</tool_response>")[0],
        },
        {"role": "assistant", "content": answer},
    ]
    rendered = tokenizer.apply_chat_template(conversation, tools=[SEARCH_TOOL], tokenize=False)
    assert tokenizer.decode(ids) + "<|im_end|>\n" == rendered


def test_same_rewards_and_retrieval_as_the_tag_format(tokenizer):
    tags = gym.make("SearchQA-v0", split="dev", tokenizer=tokenizer, top_k=2)
    tools = ToolCallActions(gym.make("SearchQA-v0", split="dev", tokenizer=tokenizer, top_k=2))
    q = "capital of the United Arab Emirates"
    for final in ["<answer>\\boxed{Abu Dhabi}</answer>", "<answer>\\boxed{Dubai}</answer>"]:
        a = play(tags, [f"<search>{q}</search>", final])
        b = play(tools, [call(q), final])
        assert [s[1] for s in a[1:]] == [s[1] for s in b[1:]]
        for x, y in zip(a[1:], b[1:]):
            for key in ("retrieved_ids", "prediction", "reward_components", "end_reason"):
                assert x[4].get(key) == y[4].get(key), key
        # the tag format's <result> block is the tool message's content
        assert a[1][0]["observation"].strip() in b[1][0]["observation"]
    bad = play(tools, [call("q", name="browse")])
    assert bad[1][2] and bad[1][1] == 0.0 and bad[1][4]["invalid_reason"] == "unknown_tool"
    assert tools.stop_strings == ("</tool_call>", "</answer>")


def _native(tokenizer, **kw):  # type: ignore[no-untyped-def]
    return gym.make(
        "SearchQA-v0", split="dev", tokenizer=tokenizer, top_k=2, action_format="tool_call", **kw
    )


def test_env_action_format_tool_call_matches_the_wrapper(tokenizer):
    """The env's own action_format="tool_call" plays exactly as the ToolCallActions wrapper."""
    native = _native(tokenizer)
    wrapped = ToolCallActions(gym.make("SearchQA-v0", split="dev", tokenizer=tokenizer, top_k=2))
    q = "capital of the United Arab Emirates"
    assert native.unwrapped.stop_strings == ("</tool_call>", "</answer>")
    for final in ["<answer>\\boxed{Abu Dhabi}</answer>", "<answer>\\boxed{Dubai}</answer>"]:
        a, b = play(native, [call(q), final]), play(wrapped, [call(q), final])
        assert a[0]["prompt"] == b[0]["prompt"]
        assert a[1][0]["observation"] == b[1][0]["observation"]  # the tool message
        assert [s[1] for s in a[1:]] == [s[1] for s in b[1:]]  # rewards
        for x, y in zip(a[1:], b[1:]):
            for key in ("retrieved_ids", "prediction", "end_reason"):
                assert x[4].get(key) == y[4].get(key), key
            assert x[4]["reward_components"]["em"] == y[4]["reward_components"]["em"]
    bad = play(native, [call("q", name="browse")])
    assert bad[1][2] and bad[1][4]["invalid_reason"] == "unknown_tool"
    with pytest.raises(ValueError, match="needs protocol='ours'"):
        _native(tokenizer, protocol="research")


def test_grpo_rollout_masks_tool_messages(tokenizer):
    """Through the GRPO rollout: prompt ids, sampled ids (mask 1), tool-message ids (mask 0)."""
    torch = pytest.importorskip("torch")
    from research_agents.generation.base import SamplingParams
    from research_agents.generation.hf import HFGenerator
    from research_agents.grpo.rollout import rollout
    from research_agents.models import TINY, load_model

    from research_env.vector import SearchQAVectorEnv

    torch.manual_seed(0)
    vec = SearchQAVectorEnv(
        2, split="dev", tokenizer=tokenizer, top_k=2, max_turns=2, action_format="tool_call"
    )
    generator = HFGenerator(load_model(TINY), tokenizer)
    params = SamplingParams(max_new_tokens=8, temperature=1.0, stop=vec.envs[0].stop_strings)
    trajs, _stats = rollout(
        vec,
        generator,
        tokenizer,
        [0, 1],
        params,
        response_prefix=call("capital of Peru"),  # a whole forced call: turn 1 searches
        max_response_tokens=400,
        seed=0,
    )
    for t in trajs:
        assert len(t.response_ids) == len(t.loss_mask) == len(t.old_logprobs)
        assert "<tools>" in tokenizer.decode(t.prompt_ids)  # the schema is in the prompt
        masked = tokenizer.decode([i for i, m in zip(t.response_ids, t.loss_mask) if m == 0])
        sampled = tokenizer.decode([i for i, m in zip(t.response_ids, t.loss_mask) if m == 1])
        assert "<tool_response>" in masked and "<tool_response>" not in sampled
        assert t.info["num_searches"] == 1
