//! The HTTP API's handlers, one module per resource. Each takes a checked request (the router in
//! [`super::routes`] has matched the method and path and checked the caller's token where the
//! route needs one) and answers with JSON or an [`super::http::ApiError`].

pub mod crm;
pub mod deliveries;
pub mod events;
pub mod export;
pub mod import;
pub mod info;
pub mod leads;
pub mod models;
pub mod outcomes;
pub mod score;
pub mod segment;
pub mod site;
