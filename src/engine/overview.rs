//! What the mesh holds, dataset by dataset: the facts `meshql catalog` prints and
//! `mesh.catalog.datasets` records (kind, format, location, version, rows, last update), from
//! one builder.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::Engine;
use crate::catalog::SYSTEM_CATALOG;
use crate::error::{Error, Result};
use crate::human;
use crate::spec::{DatasetKind, DatasetName};
use crate::storage::TableSnapshot;

/// One dataset as it stands now.
#[derive(Debug, Clone)]
pub struct DatasetFacts {
    pub name: DatasetName,
    /// `transform`, `job`, `source` or `ingested`.
    pub kind: &'static str,
    /// The storage format, or `view`.
    pub format: &'static str,
    pub view: bool,
    /// Where the data lives (a view: its SQL file).
    pub location: String,
    /// The latest version (`None` when never published, or for formats without versions).
    pub version: Option<u64>,
    /// Rows of the latest version (`None` when never published, and for views).
    pub rows: Option<u64>,
    pub last_update: Option<DateTime<Utc>>,
    /// The latest version itself, when there is one.
    pub snapshot: Option<Arc<TableSnapshot>>,
    /// Why the dataset's storage could not be read (a damaged table, a source whose files went
    /// away); its version and rows are then unknown. One broken dataset never hides the others.
    pub problem: Option<String>,
}

impl Engine {
    /// The datasets of the mesh: declared ones in declaration order, then tables only the
    /// warehouse knows (ingested), without the system catalog.
    pub fn listed_datasets(&self) -> Vec<DatasetName> {
        let mut names: Vec<DatasetName> = self.mesh().datasets().map(|d| d.name.clone()).collect();
        names.extend(
            self.catalog()
                .dataset_names()
                .into_iter()
                .filter(|n| self.mesh().dataset(n).is_none() && n.domain != SYSTEM_CATALOG),
        );
        names
    }

    /// The facts of `name`; its rows are counted from the latest version.
    pub async fn facts(&self, name: &DatasetName) -> Result<DatasetFacts> {
        let catalog = self.catalog();
        let store = catalog.store(name).ok_or_else(|| catalog.not_found(name))?;
        let dataset = self.mesh().dataset(name);
        let view = catalog.is_view(name);
        let opened = async {
            let snapshot = catalog.snapshot(name).await?;
            // A view holds no rows of its own: counting would run it.
            let rows = match &snapshot {
                Some(_) if !view => Some(self.count_rows(name).await?),
                _ => None,
            };
            Ok::<_, Error>((snapshot, rows))
        };
        let (snapshot, rows, problem) = match opened.await {
            Ok((snapshot, rows)) => (snapshot, rows, None),
            Err(e) => {
                tracing::warn!(dataset = %name, error = %e, "cannot read a dataset's storage");
                (None, None, Some(e.to_string()))
            }
        };
        Ok(DatasetFacts {
            name: name.clone(),
            kind: DatasetKind::label_of(dataset),
            format: if view { "view" } else { store.format() },
            view,
            location: match (view, dataset) {
                (true, Some(ds)) => ds.file.display().to_string(),
                _ => store.location().to_string(),
            },
            version: snapshot.as_ref().and_then(|s| s.version),
            rows,
            last_update: snapshot.as_ref().and_then(|s| s.last_modified),
            snapshot,
            problem,
        })
    }

    /// One row per dataset: domain, layer, dataset, kind, format, version, rows, last update,
    /// product, freshness and whether it is held in memory (`meshql catalog`).
    pub async fn overview(&self) -> Result<RecordBatch> {
        let now = chrono::Utc::now();
        let mut facts = Vec::new();
        for name in self.listed_datasets() {
            facts.push(self.facts(&name).await?);
        }
        let text = |f: &dyn Fn(&DatasetFacts) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(facts.iter().map(f).collect::<Vec<_>>()))
        };
        let contract = |f: &DatasetFacts| {
            self.mesh()
                .dataset(&f.name)
                .and_then(|d| d.contract.as_ref())
        };
        let mut fields: Vec<Field> = ["domain", "layer", "dataset", "kind", "format"]
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect();
        fields.push(Field::new("version", DataType::UInt64, true));
        fields.push(Field::new("rows", DataType::UInt64, true));
        fields.push(Field::new(
            "last_update",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ));
        fields.push(Field::new("product", DataType::Utf8, true));
        fields.push(Field::new("freshness", DataType::Utf8, true));
        fields.push(Field::new("accelerated", DataType::Utf8, true));
        fields.push(Field::new("problem", DataType::Utf8, true));
        let arrays: Vec<ArrayRef> = vec![
            text(&|f| Some(f.name.domain.clone())),
            text(&|f| Some(f.name.layer.clone())),
            text(&|f| Some(f.name.dataset.clone())),
            text(&|f| Some(f.kind.to_string())),
            text(&|f| Some(f.format.to_string())),
            Arc::new(UInt64Array::from(
                facts.iter().map(|f| f.version).collect::<Vec<_>>(),
            )),
            Arc::new(UInt64Array::from(
                facts.iter().map(|f| f.rows).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMillisecondArray::from(
                    facts
                        .iter()
                        .map(|f| f.last_update.map(|t| t.timestamp_millis()))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            text(&|f| contract(f).map(|c| format!("{} {}", c.id, c.version_text))),
            text(&|f| {
                contract(f).map(|c| {
                    crate::spec::contract::freshness(c.latency, f.last_update, now).to_string()
                })
            }),
            text(&|f| {
                let accelerator = self.catalog().accelerator();
                match accelerator.status(&f.name) {
                    Some(held) => Some(format!("in memory, {}", human::bytes(held.bytes as u128))),
                    None => accelerator
                        .configured(&f.name)
                        .then(|| "when served".to_string()),
                }
            }),
            text(&|f| f.problem.clone()),
        ];
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
    }

    /// Rows of the latest version of `name` (a `count(*)`, answered from file statistics where
    /// the format keeps them).
    pub async fn count_rows(&self, name: &DatasetName) -> Result<u64> {
        use datafusion::arrow::array::{Array, Int64Array};
        use futures::TryStreamExt;

        let sql = format!(
            "SELECT count(*) FROM \"{}\".\"{}\".\"{}\"",
            name.domain, name.layer, name.dataset
        );
        let state = self.session();
        let (_, stream) = self.execute(&sql, &state).await?;
        let batches: Vec<_> = stream.try_collect().await?;
        let count = batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .map(|a| a.value(0))
            })
            .ok_or_else(|| Error::internal("count(*) returned no value"))?;
        Ok(count.max(0) as u64)
    }
}
