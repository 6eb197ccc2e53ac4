//! DataFusion catalog and schema providers over the [`MeshCatalog`].

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::TableType;

use super::MeshCatalog;
use crate::spec::DatasetName;

/// Which datasets a session lists (information_schema): the others still resolve, so that a
/// query naming one is refused by governance with PermissionDenied rather than NotFound.
pub type Visibility = Arc<dyn Fn(&DatasetName) -> bool + Send + Sync>;

/// A domain: its layers are the schemas.
pub struct DomainCatalog {
    catalog: Arc<MeshCatalog>,
    domain: String,
    visible: Option<Visibility>,
}

impl std::fmt::Debug for DomainCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainCatalog")
            .field("domain", &self.domain)
            .finish()
    }
}

impl DomainCatalog {
    pub fn new(catalog: Arc<MeshCatalog>, domain: &str) -> Self {
        Self {
            catalog,
            domain: domain.to_string(),
            visible: None,
        }
    }

    /// Lists only the datasets `visible` accepts.
    pub fn with_visibility(mut self, visible: Visibility) -> Self {
        self.visible = Some(visible);
        self
    }

    fn layers(&self) -> &[String] {
        self.catalog
            .mesh()
            .domain(&self.domain)
            .map(|d| d.layers.as_slice())
            .unwrap_or_default()
    }
}

impl CatalogProvider for DomainCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        let layers = self.layers().to_vec();
        match &self.visible {
            None => layers,
            Some(visible) => layers
                .into_iter()
                .filter(|l| {
                    self.catalog
                        .datasets_in(&self.domain, l)
                        .iter()
                        .any(|n| visible(n))
                })
                .collect(),
        }
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.layers().iter().any(|l| l == name).then(|| {
            Arc::new(LayerSchema {
                catalog: Arc::clone(&self.catalog),
                domain: self.domain.clone(),
                layer: name.to_string(),
                visible: self.visible.clone(),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

/// A layer: its datasets are the tables.
pub struct LayerSchema {
    catalog: Arc<MeshCatalog>,
    domain: String,
    layer: String,
    visible: Option<Visibility>,
}

impl std::fmt::Debug for LayerSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerSchema")
            .field("domain", &self.domain)
            .field("layer", &self.layer)
            .finish()
    }
}

impl LayerSchema {
    fn name(&self, table: &str) -> DatasetName {
        DatasetName::new(&self.domain, &self.layer, table)
    }
}

#[async_trait]
impl SchemaProvider for LayerSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        self.catalog
            .datasets_in(&self.domain, &self.layer)
            .into_iter()
            .filter(|n| self.visible.as_ref().is_none_or(|v| v(n)))
            .map(|n| n.dataset)
            .collect()
    }

    /// A view is a view; any other dataset is a table once listed ([`MeshCatalog::is_listed`]):
    /// `information_schema.tables` neither plans every view nor reads every source.
    async fn table_type(&self, name: &str) -> DfResult<Option<TableType>> {
        let dataset = self.name(name);
        if self.catalog.store(&dataset).is_none() {
            return Ok(None);
        }
        let listed = self
            .catalog
            .is_listed(&dataset)
            .await
            .map_err(|e| e.into_datafusion())?;
        Ok(match (listed, self.catalog.is_view(&dataset)) {
            (false, _) => None,
            (true, true) => Some(TableType::View),
            (true, false) => Some(TableType::Base),
        })
    }

    /// The latest published version; `None` for unknown names and datasets never published
    /// (the query engine reports both with a hint before planning).
    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let dataset = self.name(name);
        if self.catalog.store(&dataset).is_none() {
            return Ok(None);
        }
        let snapshot = self
            .catalog
            .snapshot(&dataset)
            .await
            .map_err(|e| e.into_datafusion())?;
        Ok(snapshot.map(|s| Arc::clone(&s.provider)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog.store(&self.name(name)).is_some()
    }
}
