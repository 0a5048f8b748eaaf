//! `portcullis schema`: the JSON Schema of the config file on stdout (the file
//! committed at `docs/portcullis.schema.json`).

use std::io::Write as _;

use anyhow::{Context as _, Result};

use crate::args::SchemaArgs;

pub(crate) fn run(_args: &SchemaArgs) -> Result<()> {
    std::io::stdout()
        .write_all(portcullis_policy::schema::config_schema_text().as_bytes())
        .context("writing the schema")
}
