"""Griffe extension for the API reference: render hiersmooth's docstrings as their authors meant them.

- Sphinx roles (``:class:`Smoothing```, ``:func:`~hiersmooth.x.f```), which Markdown would show as raw text,
  become *optional* mkdocs-autorefs cross-references: a link where the target is documented on the site, plain
  code where it is not, and never a warning (the build is --strict). A relative target is resolved in the scope
  of the object the docstring documents (its members, its module's imports, then its parents'), ``.name``
  relative to the package, and an imported name is followed to where it is defined.
- A ``- item`` list that follows a line of text directly gets a blank line before it, without which Markdown
  runs the list into that line.

Only the rendering changes; the source stays as it is. Loaded by mkdocs.yml (mkdocstrings' ``extensions``).
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|data|attr|obj|exc|const):`(~?)([^`<>]+?)(?:\s*<([^`<>]+)>)?`")


def _relative(target: str, obj) -> str:
    """``.name`` / ``..name`` relative to the package of ``obj``'s module, as Python's relative imports."""
    module = obj.module
    base = module.path if module.is_package else module.path.rpartition(".")[0]
    dots = len(target) - len(target.lstrip("."))
    for _ in range(dots - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{target.lstrip('.')}"


def _qualified(target: str, obj) -> str:
    """The full dotted path that a role's ``target`` names, seen from the object ``obj`` documents."""
    if target.startswith("."):
        return _relative(target, obj)
    if target.startswith("hiersmooth"):
        return target
    first, _, rest = target.partition(".")
    try:
        path = obj.resolve(first)
    except Exception:  # noqa: BLE001 - not resolvable: an optional reference, shown as code
        path = f"{obj.module.path}.{first}"
    return f"{path}.{rest}" if rest else path


def _canonical(path: str, package, defined: dict[str, list[str]]) -> str:
    """Where ``path`` is defined: an imported name is followed to its definition, and a top-level name that the
    package exports lazily (``hiersmooth.from_config``, through ``__getattr__``) to the one object of that name."""
    top, _, inner = path.partition(".")
    if top != package.path or not inner:
        return path
    try:
        found = package[inner]
        return found.final_target.path if found.is_alias else found.path
    except Exception:  # noqa: BLE001 - not a static member, or an unresolvable import
        pass
    if "." not in inner and len(defined.get(inner, [])) == 1:
        return defined[inner][0]
    return path  # as written: shown as code if the site does not document it


def _list_breaks(text: str) -> str:
    """A blank line before a top-level ``- item`` list that follows a line of text directly: Markdown needs it to
    see a list (the docstrings are written for plain-text readers and sometimes leave it out)."""
    lines = text.split("\n")
    out = lines[:1]
    for previous, line in zip(lines, lines[1:]):
        if line.startswith("- ") and previous.strip() and not previous.startswith(("- ", " ")):
            out.append("")
        out.append(line)
    return "\n".join(out)


def _rewrite(obj, package, defined: dict[str, list[str]]) -> None:
    docstring = obj.docstring
    if docstring is None:
        return
    docstring.value = _list_breaks(docstring.value)
    if ":`" not in docstring.value:
        return

    def replace(match: re.Match) -> str:
        _, short, first, second = match.groups()
        title, target = (first.strip(), second.strip()) if second else (None, first.strip())
        if title is None:
            title = target.rsplit(".", 1)[-1] if short else target
        return f'<autoref identifier="{_canonical(_qualified(target, obj), package, defined)}" optional><code>{title}</code></autoref>'

    docstring.value = _ROLE.sub(replace, docstring.value)


def _walk(obj):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`target``` in every docstring of a loaded package into an optional cross-reference."""

    def on_package(self, *, pkg, **kwargs) -> None:
        """Griffe 2 (and late 1.x): the package is loaded. Rewriting twice changes nothing."""
        objects = list(_walk(pkg))
        defined: dict[str, list[str]] = {}
        for obj in objects:
            if not obj.is_module:
                defined.setdefault(obj.name, []).append(obj.path)
        for obj in objects:
            _rewrite(obj, pkg, defined)

    def on_package_loaded(self, *, pkg, **kwargs) -> None:
        """Griffe 1.x's name for the same event."""
        self.on_package(pkg=pkg, **kwargs)
