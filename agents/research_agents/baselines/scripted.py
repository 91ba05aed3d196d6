"""A scripted agent that solves Factbook questions by decomposing them into searches.

It knows the question templates of the embedded Factbook world and nothing else: every fact
it uses comes from passages the environment retrieved for its queries. It is the demo's player
until a learned agent is trained, and a check that the questions are answerable by search.
"""

from __future__ import annotations

import re
from collections.abc import Generator

from research_agents.baselines.readers import ShownPassage, parse_result_block

# A plan yields (thought, query) pairs, receives the passages shown, and returns the answer.
Plan = Generator[tuple[str, str], list[ShownPassage], str]

_WHOSE_CAPITAL = re.compile(r"^the country whose capital is (?P<capital>.+)$")
_LONGEST_BORDER = re.compile(r"^the country that shares the longest land border with (?P<x>.+)$")
_FACT = re.compile(r"^What is the (?P<fact>capital|currency|highest point) (?:of|in) (?P<x>.+)\?$")
_REVERSE = re.compile(r"^(?P<capital>.+) is the capital of which country\?$")
_COMPARE = re.compile(
    r"^Which country has the (?P<cmp>larger|smaller) total area, (?P<a>.+) or (?P<b>.+)\?$"
)
_KM = re.compile(r"(?P<name>[^;]+?) (?P<km>[\d,.]+) km")


def _country_of(title: str) -> str:
    return title.split(" — ")[0]


def _field_passage(passages: list[ShownPassage], country: str, field: str) -> ShownPassage | None:
    for p in passages:
        parts = p.title.split(" — ")
        if parts[0].lower() == country.lower() and parts[-1].lower() == field.lower():
            return p
    return None


def _strip_the(name: str) -> str:
    return name[4:] if name.startswith("the ") else name


class ScriptedFactbookAgent:
    """Answers Factbook questions with one search per hop; see the module docstring."""

    name = "scripted-factbook"

    def __init__(self) -> None:
        self._plan: Plan | None = None

    def reset(self, question: str) -> None:
        """Start a new episode on ``question``."""
        self._plan = self._solve(question)
        self._pending: tuple[str, str] | None = None

    def act(self, observation: str) -> str:
        """Return the next action given the latest observation text."""
        if self._plan is None:
            raise RuntimeError("call reset(question) first")
        try:
            step = (
                next(self._plan)
                if self._pending is None
                else self._plan.send(parse_result_block(observation))
            )
        except StopIteration as done:
            answer: str = done.value
            return f"<think>So the answer is {answer}.</think><answer>\\boxed{{{answer}}}</answer>"
        self._pending = step
        thought, query = step
        return f"<think>{thought}</think><search>{query}</search>"

    # ------------------------------------------------------------------ plans
    def _solve(self, question: str) -> Plan:
        if m := _FACT.match(question):
            country = yield from self._resolve(m["x"])
            return (yield from self._fact(country, m["fact"]))
        if m := _REVERSE.match(question):
            return (yield from self._country_with_capital(m["capital"]))
        if m := _COMPARE.match(question):
            a = yield from self._area(_strip_the(m["a"]))
            b = yield from self._area(_strip_the(m["b"]))
            larger = m["a"] if a >= b else m["b"]
            smaller = m["b"] if larger == m["a"] else m["a"]
            return _strip_the(larger if m["cmp"] == "larger" else smaller)
        yield ("I do not know this kind of question; let me search it directly.", question)
        return "unknown"

    def _resolve(self, description: str) -> Plan:
        """Turn a country description into the country's name, searching as needed."""
        if m := _WHOSE_CAPITAL.match(description):
            return (yield from self._country_with_capital(m["capital"]))
        if m := _LONGEST_BORDER.match(description):
            country = yield from self._resolve(m["x"])
            return (yield from self._longest_neighbour(country))
        return _strip_the(description)

    def _country_with_capital(self, capital: str) -> Plan:
        passages = yield (f"I need the country whose capital is {capital}.", f"{capital} capital")
        for p in passages:
            if p.title.endswith("— Capital") and p.fields().get("name", "").startswith(capital):
                return _country_of(p.title)
        return _country_of(passages[0].title) if passages else "unknown"

    def _longest_neighbour(self, country: str) -> Plan:
        passages = yield (
            f"I need the neighbour of {country} with the longest land border.",
            f"{country} land boundaries border countries",
        )
        p = _field_passage(passages, country, "Land boundaries")
        _, _, listed = p.text.partition("border countries: ") if p else ("", "", "")
        borders: list[tuple[str, str]] = _KM.findall(listed.split(" note:")[0])
        if not borders:
            return "unknown"
        name, _km = max(borders, key=lambda nk: float(nk[1].replace(",", "")))
        return name.strip()

    def _fact(self, country: str, fact: str) -> Plan:
        field, key, query = {
            "capital": ("Capital", "name", f"{country} capital"),
            "currency": ("Exchange rates", "currency", f"{country} currency exchange rates"),
            "highest point": ("Elevation", "highest point", f"{country} elevation highest point"),
        }[fact]
        passages = yield (f"Now I need the {fact} of {country}.", query)
        p = _field_passage(passages, country, field)
        value = p.fields().get(key, "") if p else ""
        if fact == "currency":
            value = value.split(" (")[0].removesuffix(" per US dollar -").strip()
        if fact == "highest point":
            value = re.sub(r"\s+-?[\d,.]+ m\b.*$", "", value)
        value = re.sub(r"\s*\([^)]*\)", "", value).strip()  # drop asides: "Tripoli (Tarabulus)"
        return value or "unknown"

    def _area(self, country: str) -> Generator[tuple[str, str], list[ShownPassage], float]:
        passages = yield (f"I need the total area of {country}.", f"{country} area total")
        p = _field_passage(passages, country, "Area")
        m = re.match(r"([\d,.]+)", p.fields().get("total", "")) if p else None
        return float(m[1].replace(",", "")) if m else 0.0
