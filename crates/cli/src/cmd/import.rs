//! `import`: read the files, call `portcullis-import`, print the config and the warnings.

use std::io::Read as _;

use anyhow::{Context as _, Result, anyhow};
use portcullis_import::{Options, Product, Source};

use crate::args::ImportArgs;

pub(crate) fn run(args: ImportArgs) -> Result<()> {
    let product = Product::from_name(&args.from)
        .ok_or_else(|| anyhow!("--from {:?} is not a product import reads", args.from))?;
    let mut sources = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let text = if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read stdin")?;
            text
        } else {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
        };
        sources.push(Source::new(path.display().to_string(), text));
    }
    let options = Options {
        gateway_api: args.gateway_api.is_some(),
    };
    let imported = portcullis_import::import_with(product, &sources, &options)?;
    if let Some(dir) = &args.gateway_api {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for m in &imported.gateway_api {
            let path = dir.join(&m.file_name);
            std::fs::write(&path, &m.text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    for warning in &imported.warnings {
        eprintln!("{warning}");
    }
    print!("{}", imported.config);
    Ok(())
}
