"""Read prompt text from files: yours, or the named constants of a paper's own checkout.

research-env does not ship other projects' prompt sentences; it ships paraphrases, named as
ours. To run a paper's exact prompt, point these helpers at your copy of its code:

* :func:`load_template_constants` reads the string constants of a Python file **without
  running it** (it parses the file): module-level ``NAME = "..."`` assignments, and string or
  f-string assignments inside functions as ``function.name``. A ``{prompt}``/``{question}``
  placeholder or an f-string's single replacement field becomes ``{question}``; doubled
  braces of ``str.format`` strings are undone.
* :meth:`research_env.templates.PromptTemplate.from_file` builds a template from such a
  constant or from a plain text file.

Examples (paths are your checkouts)::

    from research_env.templates import PromptTemplate
    research = PromptTemplate.from_file(
        "ReCall/src/verl/utils/dataset/template.py", constant="re_search_template_sys")
    searchr1 = PromptTemplate.from_file(
        "Search-R1/scripts/data_process/nq_search.py", constant="make_prefix.prefix",
        style="searchr1")
"""

from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["PromptFileError", "load_template_constants", "read_prompt_text"]


class PromptFileError(ValueError):
    """A prompt file that cannot be read, or lacks the constant asked for."""


def _format_string(text: str) -> str:
    for name in ("{prompt}", "{question}"):
        if name in text:
            body = text.replace(name, "\0")
            return body.replace("{{", "{").replace("}}", "}").replace("\0", "{question}")
    return text


def _joined(node: ast.JoinedStr) -> str | None:
    out = []
    for part in node.values:
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            out.append(part.value)
        elif isinstance(part, ast.FormattedValue):
            out.append("\0")
        else:
            return None
    text = "".join(out)
    if text.count("\0") > 1:
        return None
    return text.replace("\0", "{question}")


def _string_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _format_string(node.value)
    if isinstance(node, ast.JoinedStr):
        return _joined(node)
    return None


def load_template_constants(path: str | Path) -> dict[str, str]:
    """The string constants of a Python file, by name, read without executing it.

    Args:
        path: A ``.py`` file (e.g. ReSearch's ``src/verl/utils/dataset/template.py``).

    Returns:
        ``{name: text}``; names inside functions are ``"function.name"``.

    Raises:
        PromptFileError: If the file cannot be read or parsed (the message names it).
    """
    p = Path(path)
    try:
        tree = ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
    except (OSError, UnicodeDecodeError) as e:
        raise PromptFileError(f"{p}: cannot read ({e})") from None
    except SyntaxError as e:
        raise PromptFileError(f"{p}:{e.lineno}: not valid Python ({e.msg})") from None
    found: dict[str, str] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(stmt.body, f"{prefix}{stmt.name}.")
            elif isinstance(stmt, ast.If):
                visit(stmt.body, prefix)
                visit(stmt.orelse, prefix)
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target = stmt.targets[0]
                text = _string_of(stmt.value)
                if isinstance(target, ast.Name) and text is not None:
                    found.setdefault(prefix + target.id, text)

    visit(tree.body, "")
    return found


def read_prompt_text(path: str | Path, constant: str | None = None) -> str:
    """The prompt text of a file: a named constant of a ``.py`` file, or a whole text file.

    Raises:
        PromptFileError: If the file cannot be read, or has no such constant (the message
            lists the constants it has).
    """
    p = Path(path)
    if p.suffix == ".py":
        constants = load_template_constants(p)
        if constant is None:
            raise PromptFileError(f"{p}: name the constant to use; it has: {', '.join(constants)}")
        if constant not in constants:
            raise PromptFileError(
                f"{p}: no string constant {constant!r}; it has: {', '.join(constants) or 'none'}"
            )
        return constants[constant]
    if constant is not None:
        raise PromptFileError(f"{p}: constant= applies to .py files only")
    try:
        return _format_string(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise PromptFileError(f"{p}: cannot read ({e})") from None
