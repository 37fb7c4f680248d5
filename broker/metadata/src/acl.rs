//! Access control lists with Kafka's model: what an ACL is, how CreateAcls checks one, how Describe/DeleteAcls
//! filters match them, and the authorizer's decision (Kafka's `StandardAuthorizer` rules). Pure: the broker
//! passes the principal, host and resource of each operation.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The cluster resource's one name.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The name and principal that match any.
pub const WILDCARD: &str = "*";
pub const WILDCARD_PRINCIPAL: &str = "User:*";

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $id:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),*];

            /// Kafka's wire id.
            pub fn id(self) -> i8 {
                match self { $($name::$variant => $id),* }
            }

            pub fn from_id(id: i8) -> Option<$name> {
                match id { $($id => Some($name::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($name::$variant => $text),* })
            }
        }
    };
}

wire_enum!(
    /// What an ACL protects (Kafka's `ResourceType`; 0 is UNKNOWN and 1 ANY on the wire).
    ResourceType {
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

wire_enum!(
    /// How an ACL's resource name matches (0 UNKNOWN, 1 ANY and 2 MATCH are filters only).
    PatternType {
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

wire_enum!(
    /// What an ACL allows or denies (0 UNKNOWN and 1 ANY are filters only).
    Operation {
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

wire_enum!(
    /// (0 UNKNOWN and 1 ANY are filters only.)
    Permission {
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// The wire ids of the filter-only values.
pub const ANY: i8 = 1;
pub const MATCH: i8 = 2;

/// One ACL: `principal` from `host` may (or may not) do `operation` on the resources the pattern names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// An ACL as CreateAcls carries it, wire ids unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclCreation<'a> {
    pub resource_type: i8,
    pub resource_name: &'a str,
    pub pattern_type: i8,
    pub principal: &'a str,
    pub host: &'a str,
    pub operation: i8,
    pub permission: i8,
}

impl AclCreation<'_> {
    /// The ACL, or why Kafka would refuse it (INVALID_REQUEST with this message).
    pub fn validate(&self) -> Result<AclBinding, String> {
        let resource_type = ResourceType::from_id(self.resource_type)
            .ok_or_else(|| format!("Invalid resource type {}", self.resource_type))?;
        let pattern_type = PatternType::from_id(self.pattern_type).ok_or_else(|| {
            format!(
                "Invalid pattern type {}: an ACL's pattern is LITERAL or PREFIXED",
                self.pattern_type
            )
        })?;
        let operation = Operation::from_id(self.operation)
            .ok_or_else(|| format!("Invalid operation {}", self.operation))?;
        let permission = Permission::from_id(self.permission)
            .ok_or_else(|| format!("Invalid permission type {}", self.permission))?;
        if self.resource_name.is_empty() {
            return Err("Resource name should not be empty".into());
        }
        if resource_type == ResourceType::Cluster
            && (self.resource_name != CLUSTER_NAME || pattern_type != PatternType::Literal)
        {
            return Err(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return Err(format!(
                    "Could not parse principal from `{}` (no colon is present separating the principal \
                     type from the principal name)",
                    self.principal
                ));
            }
        }
        if self.host.is_empty() {
            return Err("Host should not be empty".into());
        }
        Ok(AclBinding {
            resource_type,
            resource_name: self.resource_name.to_owned(),
            pattern_type,
            principal: self.principal.to_owned(),
            host: self.host.to_owned(),
            operation,
            permission,
        })
    }
}

/// A Describe/DeleteAcls filter (wire ids: ANY matches every value, MATCH every pattern that names the
/// filter's resource name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter<'a> {
    pub resource_type: i8,
    pub resource_name: Option<&'a str>,
    pub pattern_type: i8,
    pub principal: Option<&'a str>,
    pub host: Option<&'a str>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter<'_> {
    /// Why Kafka refuses the filter (UNKNOWN values), if it does.
    pub fn validate(&self) -> Result<(), String> {
        let known = |id: i8, ok: bool| id == ANY || ok;
        if !known(
            self.resource_type,
            ResourceType::from_id(self.resource_type).is_some(),
        ) {
            return Err(format!(
                "Invalid resource type filter {}",
                self.resource_type
            ));
        }
        if !(self.pattern_type == MATCH
            || known(
                self.pattern_type,
                PatternType::from_id(self.pattern_type).is_some(),
            ))
        {
            return Err(format!("Invalid pattern type filter {}", self.pattern_type));
        }
        if !known(self.operation, Operation::from_id(self.operation).is_some()) {
            return Err(format!("Invalid operation filter {}", self.operation));
        }
        if !known(
            self.permission,
            Permission::from_id(self.permission).is_some(),
        ) {
            return Err(format!("Invalid permission filter {}", self.permission));
        }
        Ok(())
    }

    pub fn matches(&self, acl: &AclBinding) -> bool {
        let field = |filter: i8, value: i8| filter == ANY || filter == value;
        if !field(self.resource_type, acl.resource_type.id())
            || !field(self.operation, acl.operation.id())
            || !field(self.permission, acl.permission.id())
            || self.principal.is_some_and(|p| p != acl.principal)
            || self.host.is_some_and(|h| h != acl.host)
        {
            return false;
        }
        if self.pattern_type == MATCH {
            return self
                .resource_name
                .is_none_or(|name| pattern_matches(acl, name));
        }
        field(self.pattern_type, acl.pattern_type.id())
            && self.resource_name.is_none_or(|n| n == acl.resource_name)
    }
}

/// Whether `acl`'s resource pattern names the resource called `name`.
fn pattern_matches(acl: &AclBinding, name: &str) -> bool {
    match acl.pattern_type {
        PatternType::Literal => acl.resource_name == name || acl.resource_name == WILDCARD,
        PatternType::Prefixed => name.starts_with(&acl.resource_name),
    }
}

/// The authorizer's settings: `super.users` and `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerSettings {
    pub super_users: Vec<String>,
    pub allow_if_no_acls: bool,
}

/// Kafka's decision for `principal` at `host` doing `operation` on the resource `(resource_type, name)`:
/// super users may do anything; a matching DENY wins over any ALLOW; an ALLOW of the operation (or of ALL, or
/// of an operation that implies it: READ, WRITE, DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS implies
/// DESCRIBE_CONFIGS) allows; a resource no ACL names at all is open only with `allow_if_no_acls`.
pub fn authorize<'a>(
    acls: impl IntoIterator<Item = &'a AclBinding>,
    settings: &AuthorizerSettings,
    principal: &str,
    host: &str,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    if settings.super_users.iter().any(|s| s == principal) {
        return true;
    }
    let mut any_for_resource = false;
    let mut allowed = false;
    for acl in acls {
        if acl.resource_type != resource_type || !pattern_matches(acl, name) {
            continue;
        }
        any_for_resource = true;
        if (acl.principal != principal && acl.principal != WILDCARD_PRINCIPAL)
            || (acl.host != host && acl.host != WILDCARD)
        {
            continue;
        }
        match acl.permission {
            Permission::Deny if acl.operation == operation || acl.operation == Operation::All => {
                return false;
            }
            Permission::Deny => {}
            Permission::Allow => allowed |= implies(acl.operation, operation),
        }
    }
    allowed || (!any_for_resource && settings.allow_if_no_acls)
}

/// Whether an ALLOW of `granted` allows `wanted`.
fn implies(granted: Operation, wanted: Operation) -> bool {
    granted == wanted
        || granted == Operation::All
        || (wanted == Operation::Describe
            && matches!(
                granted,
                Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
            ))
        || (wanted == Operation::DescribeConfigs && granted == Operation::AlterConfigs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        principal: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn kafkas_rules_decide() {
        use Operation::*;
        use PatternType::*;
        use ResourceType::*;
        let acls = vec![
            acl(
                Topic,
                "orders",
                Literal,
                "User:alice",
                Read,
                Permission::Allow,
            ),
            acl(
                Topic,
                "logs-",
                Prefixed,
                "User:alice",
                Write,
                Permission::Allow,
            ),
            acl(
                Topic,
                "logs-secret",
                Literal,
                "User:alice",
                All,
                Permission::Deny,
            ),
            acl(Topic, "*", Literal, "User:bob", Describe, Permission::Allow),
            acl(Group, "g", Literal, "User:*", Read, Permission::Allow),
            acl(
                Cluster,
                CLUSTER_NAME,
                Literal,
                "User:ops",
                AlterConfigs,
                Permission::Allow,
            ),
        ];
        let settings = AuthorizerSettings {
            super_users: vec!["User:admin".into()],
            allow_if_no_acls: false,
        };
        let may = |principal: &str, op, rt, name: &str| {
            authorize(&acls, &settings, principal, "10.0.0.1", op, rt, name)
        };
        assert!(may("User:alice", Read, Topic, "orders"));
        assert!(
            may("User:alice", Describe, Topic, "orders"),
            "READ implies DESCRIBE"
        );
        assert!(!may("User:alice", Write, Topic, "orders"));
        assert!(!may("User:carol", Read, Topic, "orders"));
        assert!(may("User:alice", Write, Topic, "logs-app"), "prefixed");
        assert!(!may("User:alice", Write, Topic, "logs-secret"), "DENY wins");
        assert!(
            !may("User:alice", Describe, Topic, "logs-secret"),
            "DENY ALL denies all"
        );
        assert!(
            may("User:bob", Describe, Topic, "anything"),
            "literal wildcard"
        );
        assert!(!may("User:bob", Read, Topic, "anything"));
        assert!(may("User:anyone", Read, Group, "g"), "wildcard principal");
        assert!(!may("User:anyone", Read, Group, "h"));
        assert!(
            may("User:ops", DescribeConfigs, Cluster, CLUSTER_NAME),
            "ALTER_CONFIGS implies DESCRIBE_CONFIGS"
        );
        assert!(!may("User:ops", Alter, Cluster, CLUSTER_NAME));
        assert!(
            may("User:admin", Delete, Cluster, CLUSTER_NAME),
            "super user"
        );
        // A resource no ACL names: closed, unless allow.everyone.if.no.acl.found.
        assert!(!may("User:carol", Read, TransactionalId, "t"));
        let open = AuthorizerSettings {
            allow_if_no_acls: true,
            ..settings.clone()
        };
        assert!(authorize(
            &acls,
            &open,
            "User:carol",
            "h",
            Read,
            TransactionalId,
            "t"
        ));
        assert!(
            !authorize(&acls, &open, "User:carol", "h", Read, Topic, "orders"),
            "a resource with ACLs stays closed to others"
        );
        // Hosts.
        let host_acl = vec![AclBinding {
            host: "10.0.0.9".into(),
            ..acl(Topic, "t", Literal, "User:alice", Read, Permission::Allow)
        }];
        assert!(authorize(
            &host_acl,
            &settings,
            "User:alice",
            "10.0.0.9",
            Read,
            Topic,
            "t"
        ));
        assert!(!authorize(
            &host_acl,
            &settings,
            "User:alice",
            "10.0.0.1",
            Read,
            Topic,
            "t"
        ));
    }

    #[test]
    fn creations_are_checked_and_filters_match_as_in_kafka() {
        let ok = AclCreation {
            resource_type: 2,
            resource_name: "orders",
            pattern_type: 3,
            principal: "User:alice",
            host: "*",
            operation: 3,
            permission: 3,
        };
        let binding = ok.validate().unwrap();
        for bad in [
            AclCreation {
                resource_type: 1,
                ..ok.clone()
            },
            AclCreation {
                resource_type: 0,
                ..ok.clone()
            },
            AclCreation {
                pattern_type: 2,
                ..ok.clone()
            },
            AclCreation {
                operation: 1,
                ..ok.clone()
            },
            AclCreation {
                permission: 1,
                ..ok.clone()
            },
            AclCreation {
                principal: "alice",
                ..ok.clone()
            },
            AclCreation {
                resource_name: "",
                ..ok.clone()
            },
            AclCreation {
                resource_type: 4,
                resource_name: "other",
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let filter = AclFilter {
            resource_type: ANY,
            resource_name: None,
            pattern_type: ANY,
            principal: None,
            host: None,
            operation: ANY,
            permission: ANY,
        };
        assert!(filter.matches(&binding));
        let prefixed = AclBinding {
            resource_name: "ord".into(),
            pattern_type: PatternType::Prefixed,
            ..binding.clone()
        };
        let wildcard = AclBinding {
            resource_name: "*".into(),
            ..binding.clone()
        };
        let named = AclFilter {
            resource_name: Some("orders"),
            ..filter.clone()
        };
        assert!(named.matches(&binding) && !named.matches(&prefixed) && !named.matches(&wildcard));
        let matching = AclFilter {
            pattern_type: MATCH,
            ..named.clone()
        };
        assert!(
            matching.matches(&binding)
                && matching.matches(&prefixed)
                && matching.matches(&wildcard)
        );
        let literal_only = AclFilter {
            pattern_type: 3,
            resource_name: None,
            ..filter.clone()
        };
        assert!(literal_only.matches(&binding) && !literal_only.matches(&prefixed));
        assert!(
            !AclFilter {
                principal: Some("User:bob"),
                ..filter.clone()
            }
            .matches(&binding)
        );
        assert!(
            !AclFilter {
                operation: 4,
                ..filter.clone()
            }
            .matches(&binding)
        );
        assert!(
            AclFilter {
                operation: 0,
                ..filter.clone()
            }
            .validate()
            .is_err()
        );
        assert!(matching.validate().is_ok());
        // Stored as JSON in the metadata log, by name.
        let json = serde_json::to_string(&binding).unwrap();
        assert!(
            json.contains("\"TOPIC\"") && json.contains("\"LITERAL\""),
            "{json}"
        );
    }
}
