#!/usr/bin/env python3
"""Writes crates/etcd/src/inspect/k8s_schema.txt, the wire schema of Kubernetes' protobuf types.

`caasctl etcd inspect k8s get` turns protobuf-encoded objects back into JSON without a Kubernetes
library. For that it needs, for every message, each field's number, JSON name and type. This
script reads them out of two crates in the cargo registry:

  * k8s-pb: prost messages generated from Kubernetes' .proto files (field numbers and types);
  * k8s-openapi: serde code whose field matchers give each Rust field's JSON name ("podIP").

Run it after changing either version below, then commit the schema file:

    python3 scripts/gen-k8s-schema.py

Output format, one record per line:
    m MESSAGE                      a message, by its module path (api.apps.v1.Deployment)
    TAG JSON KIND [TYPE]           one field of the message above
KIND is s (string), i (integer), b (bool), d (double), y (bytes) or M (message of TYPE); a
leading * marks a repeated field, a leading % a map with string keys, and ^M an embedded message
whose fields JSON puts inline.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

K8S_PB = "0.9.0"
K8S_OPENAPI = "0.29.0"
OPENAPI_FEATURE = "v1_37"

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "crates/etcd/src/inspect/k8s_schema.txt"

SCALARS = {"string": "s", "int32": "i", "int64": "i", "bool": "b", "double": "d", "bytes": "y"}


def registry_dir(name, version):
    """Finds NAME-VERSION in the cargo registry, fetching it through a scratch project if needed."""
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    found = sorted(home.glob(f"registry/src/*/{name}-{version}"))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch, "src").mkdir()
        Path(scratch, "src/lib.rs").write_text("")
        Path(scratch, "Cargo.toml").write_text(
            f'[package]\nname = "schema-fetch"\nversion = "0.0.0"\nedition = "2021"\n\n'
            f'[dependencies]\n{name} = "={version}"\n'
        )
        subprocess.run(["cargo", "fetch", "--quiet"], cwd=scratch, check=True)
    found = sorted(home.glob(f"registry/src/*/{name}-{version}"))
    if not found:
        sys.exit(f"{name} {version} is not in {home}/registry/src after cargo fetch")
    return found[0]


def snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def openapi_fields(openapi, module, name):
    """JSON names of the k8s-openapi struct that matches a k8s-pb message, or None."""
    path = openapi / "src" / OPENAPI_FEATURE / Path(*module) / f"{snake(name)}.rs"
    if not path.exists():
        return None
    return dict((rust.rstrip("_"), json_name) for json_name, rust in FIELD_MATCH.findall(path.read_text()))


FIELD_MATCH = re.compile(r'"([A-Za-z0-9$_.-]+)" => Field::Key_([a-z0-9_]+),')


def json_names(openapi):
    """Maps each snake_case Rust field name of k8s-openapi to its JSON name."""
    names, clashes = {}, set()
    pattern = re.compile(r'"([A-Za-z0-9$_.-]+)" => Field::Key_([a-z0-9_]+),')
    for path in (openapi / "src" / OPENAPI_FEATURE).rglob("*.rs"):
        for json_name, rust in pattern.findall(path.read_text()):
            rust = rust.rstrip("_")
            if names.get(rust, json_name) != json_name:
                clashes.add(rust)
            names.setdefault(rust, json_name)
    return names, clashes


def camel(rust):
    head, *rest = rust.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def resolve(module, rust_type):
    """Turns a Rust type path seen in MODULE into a dotted module path."""
    path = list(module)
    parts = rust_type.split("::")
    while parts and parts[0] == "super":
        parts.pop(0)
        path.pop()
    return ".".join(path + parts)


FIELD = re.compile(r"#\[prost\(([^)]*)\)\]\s*(?:///[^\n]*\n\s*)*pub (r#)?(\w+):\s*(.+?),\n\s*(?=///|#\[|\})", re.S)
STRUCT = re.compile(r"pub struct (\w+) \{(\}|.*?\n\})", re.S)
INNER_TYPE = re.compile(r"([\w:]+)>*$")


def field_record(module, attrs, rust, rust_type, names, own, members):
    tag = re.search(r'tag = "(\d+)"', attrs).group(1)
    json_name = (own or {}).get(rust) or names.get(rust, camel(rust))
    kind = attrs.split(",")[0].strip()
    rust_type = re.sub(r"\s+", "", rust_type).rstrip(",").replace(",>", ">")
    if kind.startswith("btree_map") or kind.startswith("map"):
        value = re.search(r'= "string, (\w+)"', attrs).group(1)
        if value == "message":
            inner = INNER_TYPE.search(rust_type.replace(" ", "")).group(1)
            return f"{tag} {json_name} %M {resolve(module, inner)}"
        return f"{tag} {json_name} %{SCALARS[value]}"
    repeated = "*" if re.search(r"\brepeated\b", attrs) else ""
    if kind == "message":
        inner = INNER_TYPE.search(rust_type.replace(" ", "")).group(1)
        # A Go struct embedded without a JSON name (Volume's VolumeSource) has its fields inlined:
        # k8s-openapi then has no field of that name in the matching struct.
        target = resolve(module, inner)
        embedded = members.get(target, ())
        if own is not None and not repeated and rust not in own and embedded and all(f in own for f in embedded):
            return f"{tag} {json_name} ^M {resolve(module, inner)}"
        return f"{tag} {json_name} {repeated}M {resolve(module, inner)}"
    scalar = kind.split("=")[0].strip()
    if scalar not in SCALARS:
        raise SystemExit(f"unhandled prost kind {attrs!r} for {rust} in {'.'.join(module)}")
    return f"{tag} {json_name} {repeated}{SCALARS[scalar]}"


def main():
    pb = registry_dir("k8s-pb", K8S_PB)
    openapi = registry_dir("k8s-openapi", K8S_OPENAPI)
    names, clashes = json_names(openapi)

    lines = [
        f"# Generated by scripts/gen-k8s-schema.py from k8s-pb {K8S_PB} and k8s-openapi {K8S_OPENAPI}.",
        "# Do not edit; run the script again.",
    ]
    sources = []
    members = {}
    for path in sorted((pb / "src").rglob("mod.rs")):
        module = list(path.relative_to(pb / "src").parent.parts)
        for name, body in STRUCT.findall(path.read_text()):
            sources.append((module, name, body))
            members[".".join(module + [name])] = [rust for _a, _r, rust, _t in FIELD.findall(body)]
    for module, name, body in sources:
        if True:
            lines.append(f"m {'.'.join(module + [name])}")
            own = openapi_fields(openapi, module, name)
            for attrs, _raw, rust, rust_type in FIELD.findall(body):
                if "oneof" in attrs:
                    continue
                lines.append(field_record(module, attrs, rust, rust_type, names, own, members))
    OUTPUT.write_text("\n".join(lines) + "\n")
    messages = sum(1 for line in lines if line.startswith("m "))
    print(f"wrote {OUTPUT.relative_to(ROOT)}: {messages} messages; {len(clashes)} field names with more than one JSON name")


if __name__ == "__main__":
    main()
