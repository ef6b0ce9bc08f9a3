//! Refuses a request that leaves out a variable its operation requires (a non-null type
//! without a default): GraphQL's `CoerceVariableValues()` raises a request error then, but
//! async-graphql's validation only checks the variables that were sent, and the operation
//! would fail later, in a resolver, as an internal error.

use async_graphql::parser::types::{DocumentOperations, OperationDefinition};
use async_graphql::{Positioned, Request, ServerError, ServerResult};

/// Refuses `request` when it leaves out a variable its operation requires (see the module
/// docs).
pub fn check_required(request: &mut Request) -> ServerResult<()> {
    let operation_name = request.operation_name.clone();
    // Parsed once: the request keeps the document for the rest of its way. One that does
    // not parse is left to the parser to report.
    let required: Vec<_> = match request.parsed_query() {
        Err(_) => Vec::new(),
        Ok(document) => selected(&document.operations, operation_name.as_deref())
            .map(|operation| {
                operation
                    .node
                    .variable_definitions
                    .iter()
                    .filter(|def| {
                        !def.node.var_type.node.nullable && def.node.default_value.is_none()
                    })
                    .map(|def| {
                        (
                            def.node.name.node.clone(),
                            def.node.var_type.node.to_string(),
                            def.pos,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    if let Some((name, ty, pos)) = required
        .into_iter()
        .find(|(name, _, _)| !request.variables.contains_key(name))
    {
        return Err(ServerError::new(
            format!("variable ${name} of required type {ty} was not provided"),
            Some(pos),
        ));
    }
    Ok(())
}

/// The operation a request runs, if it can be told (when it cannot, execution refuses it).
pub(super) fn selected<'a>(
    operations: &'a DocumentOperations,
    name: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match (operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}
