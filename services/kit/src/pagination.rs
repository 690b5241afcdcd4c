//! Page/pageSize pagination with a maximum page size.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::problem::ApiError;

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

/// `?page=1&pageSize=20` (pages count from 1). Other query parameters are refused (400
/// `invalid_query`); a list with filters declares `page` and `pageSize` in its own query type
/// and builds these from them.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 4294967295_u64, default = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub page_size: Option<u32>,
}

/// Validated pagination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub page_size: u32,
}

impl PageRequest {
    pub fn offset(&self) -> i64 {
        (i64::from(self.page) - 1) * i64::from(self.page_size)
    }
    pub fn limit(&self) -> i64 {
        i64::from(self.page_size)
    }
}

impl PageParams {
    pub fn validate(&self) -> Result<PageRequest, ApiError> {
        let page = self.page.unwrap_or(1);
        let page_size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        let mut err = Vec::new();
        if page == 0 {
            err.push(crate::problem::FieldError { field: "page".into(), message: "must be ≥ 1".into() });
        }
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            err.push(crate::problem::FieldError {
                field: "pageSize".into(),
                message: format!("must be between 1 and {MAX_PAGE_SIZE}"),
            });
        }
        if !err.is_empty() {
            return Err(ApiError::invalid_fields(err));
        }
        Ok(PageRequest { page, page_size })
    }
}

/// A page of results.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The page number, from 1.
    #[schema(minimum = 1)]
    pub page: u32,
    /// Items per page, 1 to 100.
    #[schema(minimum = 1, maximum = 100)]
    pub page_size: u32,
    /// Number of items across all pages.
    #[schema(minimum = 0)]
    pub total: i64,
    #[schema(minimum = 0)]
    pub total_pages: i64,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, req: PageRequest, total: i64) -> Self {
        let size = i64::from(req.page_size);
        Page {
            items,
            page: req.page,
            page_size: req.page_size,
            total,
            total_pages: (total + size - 1) / size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_limits() {
        let p = PageParams { page: None, page_size: None }.validate().unwrap();
        assert_eq!((p.page, p.page_size, p.offset()), (1, 20, 0));
        assert!(PageParams { page: Some(0), page_size: None }.validate().is_err());
        assert!(PageParams { page: None, page_size: Some(101) }.validate().is_err());
        let p = PageParams { page: Some(3), page_size: Some(10) }.validate().unwrap();
        assert_eq!(p.offset(), 20);
        assert_eq!(Page::new(vec![1], p, 21).total_pages, 3);
    }
}
