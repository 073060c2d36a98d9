//! The Graph endpoints, one module per resource, and what they share:
//! [`guard`] (authentication, throttles, refusing switches) and [`paging`].
//! Each endpoint reads and changes the tenant data through the shared
//! state; none knows the router.

pub(crate) mod adhoc;
pub(crate) mod auth;
pub(crate) mod contacts;
pub(crate) mod content;
pub(crate) mod directory;
pub(crate) mod folders;
pub(crate) mod guard;
pub(crate) mod meetings;
pub(crate) mod paging;
