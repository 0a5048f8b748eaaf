//! `portcullis keygen`: a new private key and its public JWKS.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use portcullis_jose::SigningKey;
use serde_json::json;

use crate::args::KeygenArgs;
use crate::cmd::{algorithm, pretty, public_jwk};

pub(crate) fn run(args: KeygenArgs) -> Result<()> {
    let alg = algorithm(&args.alg)?;
    let (key, pkcs8) = SigningKey::generate(alg).with_context(|| {
        format!("generating a key for {alg} (HS* keys are secrets: use 32+ random bytes)")
    })?;
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.to_vec()));
    let (path, overwrite) = match args.out {
        Some(p) => (p, true),
        None => (PathBuf::from("key.pem"), false),
    };
    if !overwrite && path.exists() {
        bail!("{} exists; name another file with --out", path.display());
    }
    write_private(&path, pem.as_bytes())?;
    let jwk = public_jwk(&key.public_material(), args.kid.as_deref(), Some(alg))?;
    println!("{}", pretty(&json!({ "keys": [jwk] }))?);
    eprintln!("private key written to {}", path.display());
    Ok(())
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}
