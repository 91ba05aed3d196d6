"""The instruction texts of the built-in prompt templates (:data:`.templates.TEMPLATES`).

Prose only: what each built-in template tells the agent. How a prompt is rendered and how
observations are formatted is :class:`research_env.templates.PromptTemplate`'s job; changing a
text here changes the protocol fingerprint of every template that uses it.
"""

from __future__ import annotations

__all__ = [
    "HOPS_GUIDED_SYSTEM",
    "HOPS_LAYOUT_SYSTEM",
    "HOPS_SYSTEM",
    "HOPS_TITLES_SYSTEM",
    "RESEARCH_BASE",
    "RESEARCH_SYSTEM",
    "SEARCHR1_INSTRUCTIONS",
]

_RESEARCH_EXAMPLE = (
    "For example: <think> I need the capital of France. </think> "
    "<search> capital of France </search> <result> ... </result> "
    "<think> The passages say it is Paris. </think> "
    "<answer> The capital is \\boxed{Paris}. </answer>"
)

RESEARCH_BASE = (
    "This is a conversation between a User and an Assistant. The Assistant answers the User's "
    "question by reasoning step by step and consulting a search engine whenever it is missing "
    "a fact. Every piece of reasoning goes inside <think> </think>. To look something up, the "
    "Assistant writes one short query as <search> query </search>; the search engine then "
    "returns relevant passages inside <result> </result>. It may search as many times as it "
    "needs, reasoning again after each result. When it is confident, it gives the final answer "
    "inside <answer> </answer>, writing the exact answer (a name, a number or a short phrase) "
    "in \\boxed{}. " + _RESEARCH_EXAMPLE + "\n\nUser: {question}\nAssistant:"
)

RESEARCH_SYSTEM = (
    "You are a helpful assistant. You answer the user's question by reasoning step by step "
    "and consulting a search engine whenever you are missing a fact. Put every piece of "
    "reasoning inside <think> </think>. To look something up, write one short query as "
    "<search> query </search>; the search engine then returns relevant passages inside "
    "<result> </result>. You may search as many times as you need, reasoning again after each "
    "result. When you are confident, give the final answer inside <answer> </answer>, writing "
    "the exact answer (a name, a number or a short phrase) in \\boxed{}. " + _RESEARCH_EXAMPLE
)

# Tags only, no <think>: with a neutral "<" forced after each result, SmolLM2-135M picks
# "search" or "answer" itself instead of writing prose inside <think> (docs/results.md). The
# second example links two facts, so copying the example means searching again.
HOPS_SYSTEM = (
    "You are a helpful assistant. You answer the user's question with the help of a search "
    "engine. To look something up, write one short query as <search> query </search>; the "
    "search engine then returns relevant passages inside <result> </result>. After each "
    "result, either search again for the next fact you need, or, when the result holds the "
    "answer, copy the answer from it (a name, a number or a short phrase) into \\boxed{} "
    "inside <answer> </answer>. For example, asked 'What is the capital of Norvania?': "
    "<search> Norvania capital </search> <result> Norvania, capital: Delmar </result> "
    "<answer> \\boxed{Delmar} </answer> Asked 'What is the currency of the country whose "
    "capital is Delmar?', first find the country, then its currency: <search> Delmar capital "
    "</search> <result> Norvania, capital: Delmar </result> <search> Norvania currency "
    "</search> <result> Norvania, currency: crown </result> <answer> \\boxed{crown} </answer>"
)


def _hops_layout_prompt(results_are: str, line: str) -> str:
    """``research_hops``'s examples with results in the corpus's own layout.

    The results read ``Doc 1 (Title: Country — Section — Field) ...``; ``results_are``
    describes them to the model and ``line`` ends each example result (the titles line, or
    nothing).
    """
    return (
        "You are a helpful assistant. You answer the user's question with the help of a search "
        "engine. To look something up, write one short query as <search> query </search>; the "
        f"search engine then returns passages inside <result> </result>, {results_are}. After "
        "each result, either search again for the next fact you need, or, when the result holds "
        "the answer, copy the answer from it (a name, a number or a short phrase) into "
        "\\boxed{} inside <answer> </answer>. For example, asked 'What is the capital of "
        "Norvania?': <search> Norvania capital </search> <result> Doc 1 (Title: Norvania — "
        f"Government — Capital) name: Delmar{line} </result> <answer> \\boxed{{Delmar}} </answer> "
        "Asked 'What is the currency of the country whose capital is Delmar?', first find the "
        "country, then its currency: <search> Delmar capital </search> <result> Doc 1 (Title: "
        f"Norvania — Government — Capital) name: Delmar{line} </result> <search> Norvania "
        "currency </search> <result> Doc 1 (Title: Norvania — Economy — Exchange rates) crowns "
        f"per US dollar{line} </result> <answer> \\boxed{{crown}} </answer>"
    )


# benchmarks/multihop_probe.py probes this one as "hops_layout".
HOPS_LAYOUT_SYSTEM = _hops_layout_prompt("each titled with its country and topic", "")

# The layout prompt and a sentence on how a bridge question is searched. Probed on the
# stage-1 policy it lifted single-hop reward 0.28 -> 0.48 and no second hop (docs/results.md).
HOPS_GUIDED_SYSTEM = HOPS_LAYOUT_SYSTEM + (
    " When a question names a country only by a clue (its capital, or the neighbour it "
    "borders most), the first search finds the country: read its name from the result's "
    "titles, then search for that name and the fact asked."
)

# Each example result ends with a line naming its countries (the template's titles_line): the
# name the next query needs sits where that query is written.
HOPS_TITLES_SYSTEM = _hops_layout_prompt(
    "and its last line says which countries they are about", "\nResults about: Norvania"
)

SEARCHR1_INSTRUCTIONS = (
    "Answer the question below. Always reason inside <think> and </think> first, including "
    "each time you receive new information. If some knowledge is missing, you can query a "
    "search engine by writing <search> query </search>, and the top results will be returned "
    "between <information> and </information>. You may search as often as you like. When no "
    "more external knowledge is needed, give only the final answer between <answer> and "
    "</answer>, with no explanation, for example <answer> Paris </answer>. "
    "Question: {question}\n"
)
