//! `portcullis keygen`: a new private key and its public JWKS.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use portcullis_jose::SigningKey;
use serde_json::json;

use crate::args::KeygenArgs;
use crate::cmd::{algorithm, pretty, public_jwk};

pub(crate) fn run(args: KeygenArgs) -> Result<()> {
    let alg = algorithm(&args.alg)?;
    let bits = match args.bits.as_deref() {
        None => 2048,
        Some(text) => {
            if !alg.name().starts_with("RS") && !alg.name().starts_with("PS") {
                bail!("--bits is for RSA keys (RS*/PS*), not {alg}");
            }
            // The parser admits only 2048, 3072 and 4096.
            text.parse::<u32>().context("--bits")?
        }
    };
    let path = args.out.unwrap_or_else(|| PathBuf::from("key.pem"));
    // Checked before the (slow, for RSA) generation; the write checks again.
    if !args.force && path.symlink_metadata().is_ok() {
        bail!(exists(&path));
    }
    let (key, pkcs8) = SigningKey::generate_rsa_bits(alg, bits).with_context(|| {
        format!("generating a key for {alg} (HS* keys are secrets: use 32+ random bytes)")
    })?;
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.to_vec()));
    write_private(&path, pem.as_bytes(), args.force)?;
    let jwk = public_jwk(&key.public_material(), args.kid.as_deref(), Some(alg))?;
    println!("{}", pretty(&json!({ "keys": [jwk] }))?);
    eprintln!("private key written to {}", path.display());
    Ok(())
}

fn exists(path: &Path) -> String {
    format!(
        "{} exists; pass --force to replace it (or name another file with --out)",
        path.display()
    )
}

/// Writes `bytes` to `path` atomically, mode 0600: a temporary file in the same
/// folder, synced, then moved into place. Without `force`, the move refuses to
/// replace an existing file (a hard link fails when the name exists), so a key
/// created meanwhile is not lost either.
fn write_private(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let (tmp, mut file) = create_temporary(&dir, &name.to_string_lossy())?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()));
    drop(file);
    let placed = written.and_then(|()| {
        if force {
            std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
        } else {
            match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(exists(path)),
                Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
    });
    // After a rename the temporary name is gone; after a link (or a failure) it remains.
    let _ = std::fs::remove_file(&tmp);
    placed
}

/// A new file `.NAME.tmp-PID-N` in `dir`, created exclusively with mode 0600.
fn create_temporary(dir: &Path, name: &str) -> Result<(PathBuf, std::fs::File)> {
    let mut last = None;
    for n in 0..100u32 {
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        match options.open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                return Err(e).with_context(|| format!("creating a file in {}", dir.display()));
            }
        }
    }
    Err(anyhow::anyhow!(
        "creating a temporary file in {}: {}",
        dir.display(),
        last.map_or_else(String::new, |e| e.to_string())
    ))
}
