"""The one-line description of each schema field, read from the schema's own source.

A field's description is its trailing ``# comment`` (``lr: float = 3e-4  # peak learning rate``),
or, where it has none, the comment lines right above it. The class's MRO is walked, so a field a
subclass inherits (or redefines without a comment) keeps its base class's description; this holds
for a user's own plug schema as for lmtrain's. Reading the source keeps the schema files readable:
the descriptions stay where a reader of the dataclass sees them.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import textwrap
import tokenize


def field_descriptions(schema: type) -> dict[str, str]:
    """``{field name: description}`` of the dataclass ``schema``, inherited comments included.

    Fields without a comment anywhere in the MRO are left out; a class whose source cannot be read
    (built in a REPL, shipped without .py files) gives no descriptions rather than an error.
    """
    if not dataclasses.is_dataclass(schema):
        return {}
    names = {f.name for f in dataclasses.fields(schema)}
    found: dict[str, str] = {}
    for cls in schema.__mro__:  # most derived first: a subclass's own comment wins
        if dataclasses.is_dataclass(cls):
            for name, text in _own_descriptions(cls).items():
                if name in names:
                    found.setdefault(name, text)
    return found


def schema_summary(schema: type) -> str:
    """The first line of ``schema``'s docstring ('' without one)."""
    doc = inspect.getdoc(schema) or ""
    return doc.splitlines()[0].strip() if doc else ""


@functools.cache
def _own_descriptions(cls: type) -> dict[str, str]:
    """The comments on the fields declared in ``cls``'s own body."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        class_node = ast.parse(source).body[0]
        comments = _comments_by_line(source)
    except (OSError, TypeError, SyntaxError, IndexError, tokenize.TokenError):
        return {}
    found: dict[str, str] = {}
    for statement in getattr(class_node, "body", []):
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        lines = range(statement.lineno, (statement.end_lineno or statement.lineno) + 1)
        trailing = [comments[line][0] for line in lines if line in comments and not comments[line][1]]
        above: list[str] = []
        line = statement.lineno - 1
        while line in comments and comments[line][1]:
            above.insert(0, comments[line][0])
            line -= 1
        text = " ".join(trailing or above)
        if text:
            found[statement.target.id] = text
    return found


def _comments_by_line(source: str) -> dict[int, tuple[str, bool]]:
    """line number -> (comment text, whether the comment stands alone on its line)."""
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            alone = not token.line[: token.start[1]].strip()
            comments[token.start[0]] = (token.string.lstrip("#").strip(), alone)
    return comments
