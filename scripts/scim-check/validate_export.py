"""Validate SCIM exports (`userdir export --format scim`) with scim2-models.

Each file is a ListResponse. Every resource is validated, strictly (unknown attributes are
errors), as RFC 7643's User with the enterprise extension and userdir's own extension, whose
model is built from the schema the endpoint publishes (`GET /Schemas`, saved to a file).

usage: validate_export.py USERDIR_SCHEMA_JSON EXPORT.json...
Prints one line per file (resources, invalid) and the first problems; exits 1 if any is invalid.
"""

import json
import sys

from pydantic import ValidationError
from scim2_models import Context, EnterpriseUser, Extension, Schema, User


def main() -> int:
    schema = Schema.model_validate(json.load(open(sys.argv[1])))
    userdir_ext = Extension.from_schema(schema)
    model = User[EnterpriseUser | userdir_ext]
    bad_total = 0
    for path in sys.argv[2:]:
        doc = json.load(open(path))
        resources = doc.get("Resources", [])
        bad = 0
        for r in resources:
            try:
                model.model_validate(r, scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
            except ValidationError as e:
                bad += 1
                if bad <= 3:
                    first = e.errors()[0]
                    print(f"  {path}: user {r.get('id')}: {first['loc']}: {first['msg']}")
        print(f"{path}: {len(resources)} resources, {bad} invalid")
        bad_total += bad
    return 1 if bad_total else 0


if __name__ == "__main__":
    sys.exit(main())
