"""Cross-references into latentzoo that the API pages do not document under the name used.

Docstrings refer to objects by where they are defined (``latentzoo.models.mixture.finite.
FiniteMixture``), while the API reference documents the public names (``latentzoo.models.
FiniteMixture``). For a reference Sphinx could not resolve, this looks the target up in the code:

- an object exported by ``latentzoo.models`` or ``latentzoo.inference`` links to its public page;
- another object that exists (a helper of an internal module) is shown as code, without a link;
- a name that exists nowhere is left unresolved, so that nitpicky mode fails the build on it.
"""

from __future__ import annotations

import importlib
import re

from docutils import nodes

PUBLIC = ("latentzoo.models", "latentzoo.inference")


def _lookup(dotted: str):
    """The object at ``dotted`` (a module, or attributes of one), or None."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for name in parts[cut:]:
                obj = getattr(obj, name)
        except AttributeError:
            return None
        return obj
    return None


def _scopes(node) -> list[str]:
    """Where a relative name may live: the documented object's own module and classes (from the
    docstring's source, ``...: docstring of latentzoo.x.y.Z.method``), then the page's module and
    class, and the modules of that class's latentzoo bases (for inherited members)."""
    scopes = []
    source = node.source or ""
    if "docstring of " in source:
        owner = source.split("docstring of ", 1)[1].split(":")[0]
        while "." in owner:
            scopes.append(owner)
            owner = owner.rsplit(".", 1)[0]
    module, klass = node.get("py:module"), node.get("py:class")
    if module:
        if klass:
            scopes.append(f"{module}.{klass}")
            cls = _lookup(f"{module}.{klass}")
            if isinstance(cls, type):
                for base in cls.__mro__:
                    if base.__module__.startswith("latentzoo"):
                        scopes += [f"{base.__module__}.{base.__qualname__}", base.__module__]
        scopes.append(module)
    return [scope for scope in dict.fromkeys(scopes) if scope.startswith("latentzoo")]


def _candidates(target: str, node) -> list[str]:
    target = target.lstrip("~")
    scopes = _scopes(node)
    if target.startswith("."):
        # a relative reference: from a module's package, or from the module itself
        return [scope.rsplit(".", 1)[0] + target for scope in scopes] + [scope + target for scope in scopes]
    return [target] + [f"{scope}.{target}" for scope in scopes]


def _public_name(obj) -> str | None:
    for package_name in PUBLIC:
        package = importlib.import_module(package_name)
        for name in getattr(package, "__all__", ()):
            if getattr(package, name, None) is obj:
                return f"{package_name}.{name}"
    return None


def resolve(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    for dotted in _candidates(target, node):
        if not dotted.startswith("latentzoo"):
            continue
        obj = _lookup(dotted)
        if obj is None:
            continue
        public = None
        head, _, attr = dotted.rpartition(".")
        if isinstance(obj, type) or callable(obj):
            public = _public_name(obj)
            if public is None and head:
                # a method of a class exported under a public name
                owner = _lookup(head)
                owner_public = _public_name(owner) if isinstance(owner, type) else None
                public = f"{owner_public}.{attr}" if owner_public else None
        if public is not None:
            domain = env.get_domain("py")
            for role in ("class", "func", "meth", "obj"):
                resolved = domain.resolve_xref(env, node["refdoc"], app.builder, role, public, node, contnode)
                if resolved is not None:
                    return resolved
        # it exists, but has no page of its own: show it as code
        return contnode if isinstance(contnode, nodes.literal) else nodes.literal(text=contnode.astext())
    return None


_LITERAL = re.compile(r"(``.+?``|:\w+:`[^`]*`|`[^`]*`)")
_STAR = re.compile(r"(?<![\\\w*])\*(?=[A-Za-z_(])")      # *batch in a shape, not **kwargs
_BAR = re.compile(r"(?<=\S)\|(?!\s)|(?<![\S\\])\|(?=\S)")  # |Sigma| is a determinant, not a substitution


def escape_shapes(app, what, name, obj, options, lines):
    """Docstrings write shapes as numpydoc does, ``(*batch, N, K)``, and determinants as
    ``|Sigma|``; in reStructuredText outside literals those open emphasis and substitutions."""
    if not name.startswith("latentzoo"):
        return
    in_code_block = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.endswith("::") or stripped.startswith(".. code-block") or stripped.startswith(">>>"):
            in_code_block = stripped.endswith("::") or stripped.startswith(".. code-block")
            continue
        if in_code_block and (not stripped or line.startswith(" ")):
            continue
        in_code_block = False
        parts = _LITERAL.split(line)
        for j in range(0, len(parts), 2):
            parts[j] = _BAR.sub(r"\\|", _STAR.sub(r"\\*", parts[j]))
        lines[i] = "".join(parts)


def setup(app):
    app.connect("missing-reference", resolve)
    app.connect("autodoc-process-docstring", escape_shapes)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
