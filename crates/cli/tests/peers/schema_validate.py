"""Validates YAML files against a JSON Schema with PyPI `jsonschema` (and PyPI
`PyYAML` to read them): an implementation independent of ours.

Usage: schema_validate.py SCHEMA.json FILE...
Checks the schema against the draft-07 meta-schema first (exit 2 if it fails),
then prints one JSON line per file: {"file", "valid", "errors": [{"path", "message"}]}
where `path` is written as Portcullis writes fields (`providers[0].audiences`) and,
for an unknown key, ends with that key.
"""
import json
import re
import sys

import jsonschema
import yaml


def dotted(parts):
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def leaves(error):
    if not error.context:
        yield error
        return
    for sub in error.context:
        yield from leaves(sub)


def described(error):
    parts = list(error.absolute_path)
    if error.validator == "additionalProperties":
        m = re.findall(r"'([^']+)'", error.message.split("(")[-1])
        return [{"path": dotted(parts + [k]), "message": error.message} for k in m]
    return [{"path": dotted(parts), "message": error.message}]


def main():
    with open(sys.argv[1]) as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    if cls is not jsonschema.Draft7Validator:
        print(f"not a draft-07 schema: {schema.get('$schema')}", file=sys.stderr)
        sys.exit(2)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        print(f"the schema is not a valid draft-07 schema: {e.message}", file=sys.stderr)
        sys.exit(2)
    validator = cls(schema)
    for path in sys.argv[2:]:
        try:
            with open(path) as f:
                doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            print(json.dumps({"file": path, "valid": False, "errors": [{"path": "", "message": f"not YAML: {e}"}]}))
            continue
        errors = []
        for e in validator.iter_errors(doc):
            for leaf in leaves(e):
                errors.extend(described(leaf))
        print(json.dumps({"file": path, "valid": not errors, "errors": errors}))


main()
