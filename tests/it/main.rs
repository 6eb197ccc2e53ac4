//! Integration tests: one binary (link once), one module per area.

mod acceleration;
mod cli;
mod common;
mod flight;
mod flight_sql;
mod governance;
mod iceberg;
mod jobs;
mod layering;
mod limits;
mod lineage;
mod pipeline;
mod products;
mod replicas;
mod results;
mod service;
mod spec;
mod time_travel;
