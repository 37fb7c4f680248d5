//! YAML output: Kubernetes objects as one multi-document stream, as `kubectl apply -f` reads it.

use serde::Serialize;

use crate::error::Error;

/// `---`-separated documents, one per item.
pub fn to_multi_doc<T: Serialize>(items: &[T]) -> Result<String, Error> {
    let mut out = String::new();
    for item in items {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(item)?);
    }
    Ok(out)
}
