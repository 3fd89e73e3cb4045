//! The discovery documents (RFC 7644 §4, RFC 7643 §5-§7): `/ServiceProviderConfig`,
//! `/ResourceTypes`, `/Schemas`.
//!
//! `/Schemas` publishes exactly the attributes the endpoint stores, filters, sorts and patches
//! without loss (see [`super::mapping`]); other attributes a client sends are kept as custom
//! data and returned, but are not advertised.

use serde_json::{Value, json};

use crate::json::scim::{USER_SCHEMA, USERDIR_SCHEMA};

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

/// The core User attributes published (and stored faithfully).
fn user_attributes() -> Vec<Attr> {
    vec![
        attr(
            "userName",
            "string",
            "Unique identifier for the user, compared caselessly",
        )
        .required()
        .unique(),
        attr("name", "complex", "The components of the user's name").sub(vec![
            attr("formatted", "string", "The full name"),
            attr("familyName", "string", "The family name"),
            attr("givenName", "string", "The given name"),
            attr("middleName", "string", "The middle name"),
        ]),
        attr("displayName", "string", "The name to display"),
        attr("nickName", "string", "The casual way to address the user"),
        attr(
            "preferredLanguage",
            "string",
            "Preferred written or spoken languages (an Accept-Language list)",
        ),
        attr("timezone", "string", "The user's time zone (IANA name)"),
        // The directory always holds a value (true unless deactivated): published as
        // required, so that no client expects it unassigned after a `remove`. A create
        // without it makes an active user.
        attr(
            "active",
            "boolean",
            "Whether the account is active (false: deactivated)",
        )
        .required(),
        attr(
            "password",
            "string",
            "The password (write-only; hashed with argon2id)",
        )
        .write_only(),
        attr(
            "emails",
            "complex",
            "Email addresses; the primary one is the login email, unique and caseless",
        )
        .multi()
        .sub(vec![
            attr("value", "string", "The email address"),
            attr("primary", "boolean", "Whether this is the login email"),
        ]),
        attr("roles", "complex", "Roles of the user")
            .multi()
            .sub(vec![attr("value", "string", "The role").case_exact()]),
    ]
}

/// userdir's extension attributes.
fn userdir_attributes() -> Vec<Attr> {
    vec![
        // A `YYYY-MM-DD` date: SCIM has no date-only type, so it is a string whose format
        // the description states; the canonical values are examples of that format (clients
        // that generate values, like scim2-tester, draw from them).
        attr(
            "birthDate",
            "string",
            "Birth date, YYYY-MM-DD (a date, no time)",
        )
        .case_exact()
        .canonical(&["1970-01-01", "1990-05-17", "2000-02-29"]),
        // A flag the directory always holds (false by default), like `active`.
        attr(
            "verified",
            "boolean",
            "Whether the email address is verified",
        )
        .required(),
        // A flag the directory always holds (false by default), like `active`.
        attr(
            "passwordChangeRequired",
            "boolean",
            "Whether the user must change the password at next login",
        )
        .required(),
        attr(
            "expiry",
            "integer",
            "When the account expires, in ms since the Unix epoch",
        ),
        attr(
            "lastLoginInstant",
            "integer",
            "The last successful login, in ms since the Unix epoch",
        )
        .read_only(),
    ]
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
            &user_attributes(),
            base,
        ),
        schema(
            USERDIR_SCHEMA,
            "UserdirUser",
            "userdir's attributes of a user that SCIM's core schema has no place for",
            &userdir_attributes(),
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
        "schemaExtensions": [{"schema": USERDIR_SCHEMA, "required": true}],
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
pub(crate) fn list(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}
