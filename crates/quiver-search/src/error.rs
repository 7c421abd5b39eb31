//! What can go wrong in a search: only bad queries. A search never touches
//! a file and cannot fail for any other reason.

/// Why a search was refused. Nothing is scored when a query is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// A single query whose length is not the store's dimension.
    #[error(
        "the query has {actual} elements, but the store's vectors have {expected}; pass a query of the store's dimension"
    )]
    QueryLength {
        /// The store's dimension.
        expected: usize,
        /// The query's length.
        actual: usize,
    },
    /// A batch whose length is not a whole number of queries.
    #[error(
        "the batch has {actual} elements, which is not a whole number of queries of the store's dimension {dimension}; pass the queries row after row, each of {dimension} elements"
    )]
    BatchLength {
        /// The store's dimension.
        dimension: usize,
        /// The batch's length.
        actual: usize,
    },
    /// A query holding NaN or an infinity, which would make every score NaN
    /// or infinite and the ranking meaningless.
    #[error(
        "query {query} holds a non-finite value ({value}) at element {element}; every query value must be a finite number"
    )]
    NonFiniteQuery {
        /// Which query of the batch (0 for a single query).
        query: usize,
        /// The element's index within that query.
        element: usize,
        /// The value found.
        value: f32,
    },
}
