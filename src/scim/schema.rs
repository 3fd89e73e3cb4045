//! The discovery documents (RFC 7644 §4, RFC 7643 §5-§7): `/ServiceProviderConfig`,
//! `/ResourceTypes`, `/Schemas`.
//!
//! `/Schemas` publishes exactly the attributes the endpoint stores, filters, sorts and patches
//! without loss (see [`super::mapping`]); other attributes a client sends are kept as custom
//! data and returned, but are not advertised.

use serde_json::{Value, json};

use crate::json::scim::{ENTERPRISE_SCHEMA, USER_SCHEMA, USERDIR_SCHEMA};
use crate::model::{self, AttributeInfo, Kind, Schema};

/// The `ListResponse` message URN.
pub(crate) const LIST_RESPONSE: &str = crate::json::scim::LIST_RESPONSE;
/// `ServiceProviderConfig`'s schema URN.
const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
/// `ResourceType`'s schema URN.
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
/// `Schema`'s schema URN.
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// One attribute definition (RFC 7643 §7).
struct Attr {
    name: &'static str,
    kind: &'static str,
    multi: bool,
    required: bool,
    case_exact: bool,
    mutability: &'static str,
    returned: &'static str,
    uniqueness: &'static str,
    description: &'static str,
    canonical: &'static [&'static str],
    sub: Vec<Attr>,
}

fn attr(name: &'static str, kind: &'static str, description: &'static str) -> Attr {
    Attr {
        name,
        kind,
        multi: false,
        required: false,
        case_exact: false,
        mutability: "readWrite",
        returned: "default",
        uniqueness: "none",
        description,
        canonical: &[],
        sub: Vec::new(),
    }
}

impl Attr {
    fn multi(mut self) -> Self {
        self.multi = true;
        self
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    fn unique(mut self) -> Self {
        self.uniqueness = "server";
        self
    }
    fn read_only(mut self) -> Self {
        self.mutability = "readOnly";
        self
    }
    fn write_only(mut self) -> Self {
        self.mutability = "writeOnly";
        self.returned = "never";
        self
    }
    fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical = values;
        self
    }
    fn sub(mut self, sub: Vec<Attr>) -> Self {
        self.sub = sub;
        self
    }
    fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.kind,
            "multiValued": self.multi,
            "description": self.description,
            "required": self.required,
            "mutability": self.mutability,
            "returned": self.returned,
        });
        if let Some(o) = v.as_object_mut() {
            if matches!(self.kind, "string" | "reference") {
                o.insert("caseExact".into(), self.case_exact.into());
                o.insert("uniqueness".into(), self.uniqueness.into());
            }
            if !self.canonical.is_empty() {
                o.insert("canonicalValues".into(), self.canonical.into());
            }
            if !self.sub.is_empty() {
                o.insert(
                    "subAttributes".into(),
                    self.sub.iter().map(Attr::to_json).collect(),
                );
            }
        }
        v
    }
}

/// The sub-attributes of a multi-valued attribute's elements (RFC 7643 §2.4).
fn element(value_kind: &'static str, value_exact: bool) -> Vec<Attr> {
    let mut value = attr("value", value_kind, "The value");
    value.case_exact = value_exact;
    vec![
        value,
        attr("type", "string", "A label: work, home, mobile, other, ..."),
        attr("primary", "boolean", "The preferred element (at most one)"),
        attr("display", "string", "A human-readable name"),
    ]
}

/// One attribute of the model's table as published (`None`: not a SCIM attribute).
fn published(a: &AttributeInfo) -> Option<Attr> {
    let desc = "See RFC 7643 and the userdir documentation";
    let mut out = match a.kind {
        Kind::Text => match a.name {
            "userName" => attr(
                "userName",
                "string",
                "Unique login name, compared caselessly",
            )
            .required()
            .unique(),
            // The manager's id, written as `{"value": id}` (RFC 7643 §4.3).
            "manager" => attr("manager", "complex", "The user's manager").sub(vec![attr(
                "value",
                "string",
                "The manager's id",
            )]),
            // A `YYYY-MM-DD` date: SCIM has no date-only type, so it is a string whose
            // format the description states; the canonical values are examples of it
            // (clients that generate values, like scim2-tester, draw from them).
            "birthDate" => attr("birthDate", "string", "Birth date, YYYY-MM-DD (no time)")
                .canonical(&["1970-01-01", "1990-05-17", "2000-02-29"]),
            name => attr(name, "string", desc),
        },
        Kind::Flag => attr(a.name, "boolean", desc),
        Kind::OptInstant => attr(a.name, "integer", "An instant, in ms since the Unix epoch"),
        Kind::Strings if a.name == "roles" => attr("roles", "complex", "The user's roles")
            .multi()
            .sub(vec![attr("value", "string", "The role")]),
        // preferredLanguage: one Accept-Language list.
        Kind::Strings => attr(a.name, "string", desc),
        Kind::Multi => attr(a.name, "complex", desc).multi().sub(element(
            if a.name == "x509Certificates" {
                "binary"
            } else {
                "string"
            },
            a.case_exact,
        )),
        Kind::Addresses => attr("addresses", "complex", "Physical mailing addresses")
            .multi()
            .sub(vec![
                attr("formatted", "string", "The full address"),
                attr("streetAddress", "string", "The street address"),
                attr("locality", "string", "The city or locality"),
                attr("region", "string", "The state or region"),
                attr("postalCode", "string", "The postal code"),
                attr("country", "string", "The country (ISO 3166-1 alpha-2)"),
                attr("type", "string", "A label: work, home, other"),
                attr("primary", "boolean", "The preferred address (at most one)"),
            ]),
        // Custom attributes: SCIM has no type for arbitrary keys, so they travel as the
        // JSON text of an object; the canonical value is an example of that shape.
        Kind::Data => attr(
            "data",
            "string",
            "Custom attributes: the JSON text of an object",
        )
        .case_exact()
        .canonical(&["{\"plan\":\"pro\"}"]),
        Kind::Instant | Kind::Version | Kind::Hash => return None,
    };
    if a.kind == Kind::Text || a.kind == Kind::Strings {
        out.case_exact = out.case_exact || a.case_exact;
    }
    match a.name {
        // Values the directory always holds (active unless deactivated, flags false by
        // default): published as required, so that no client expects them unassigned after
        // a `remove`. A create without them is accepted all the same.
        "active" | "verified" | "passwordChangeRequired" => out = out.required(),
        // Audit instants the directory keeps: read-only, returned when asked for by
        // `attributes` (see `mapping::ON_REQUEST`).
        "lastLoginInstant" | "passwordLastUpdateInstant" => {
            out = out.read_only();
            out.returned = "request";
        }
        _ => {}
    }
    Some(out)
}

/// The published attributes of one schema, from the model's attribute table: every
/// attribute stored, with `name.*` as the sub-attributes of `name`.
fn attributes_of(schema: Schema) -> Vec<Attr> {
    let mut out = Vec::new();
    let mut name_parts = Vec::new();
    for a in model::attributes().filter(|a| a.schema == schema) {
        if let Some(part) = a.name.strip_prefix("name.") {
            let mut sub = attr(part, "string", "A component of the name");
            sub.case_exact = a.case_exact;
            name_parts.push(sub);
        } else if let Some(p) = published(&a) {
            out.push(p);
        }
    }
    if !name_parts.is_empty() {
        out.insert(
            1.min(out.len()),
            attr("name", "complex", "The components of the user's name").sub(name_parts),
        );
    }
    if schema == Schema::Core {
        out.push(
            attr(
                "password",
                "string",
                "The password (write-only; hashed with argon2id)",
            )
            .write_only(),
        );
    }
    out
}

fn schema(id: &str, name: &str, description: &str, attrs: &[Attr], base: &str) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attrs.iter().map(Attr::to_json).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{base}/Schemas/{id}"),
        },
    })
}

/// Every schema `/Schemas` lists.
pub(crate) fn schemas(base: &str) -> Vec<Value> {
    vec![
        schema(
            USER_SCHEMA,
            "User",
            "User Account",
            &attributes_of(Schema::Core),
            base,
        ),
        schema(
            ENTERPRISE_SCHEMA,
            "EnterpriseUser",
            "Enterprise User",
            &attributes_of(Schema::Enterprise),
            base,
        ),
        schema(
            USERDIR_SCHEMA,
            "UserdirUser",
            "userdir's attributes of a user that SCIM's schemas have no place for",
            &attributes_of(Schema::Userdir),
            base,
        ),
    ]
}

/// The one resource type (`User`).
pub(crate) fn resource_types(base: &str) -> Vec<Value> {
    vec![json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "User Account",
        "schema": USER_SCHEMA,
        // Every User resource this endpoint returns carries the extension (its flags always
        // have a value); a create without it is accepted all the same.
        "schemaExtensions": [
            {"schema": ENTERPRISE_SCHEMA, "required": false},
            {"schema": USERDIR_SCHEMA, "required": true},
        ],
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base}/ResourceTypes/User"),
        },
    })]
}

/// `/ServiceProviderConfig`.
pub(crate) fn service_provider_config(base: &str, max_results: usize, max_body: usize) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://docs.rs/userdir",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": max_body},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": true},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A bearer token in the Authorization header",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}

/// A `ListResponse` of every item, for the discovery collections.
pub(crate) fn list(items: &[Value]) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}
