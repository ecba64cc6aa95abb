//! `agreements keygen`: an RSA-2048 pair in the containers the SDKs and consoles use.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use agreements_bulk::files::{PRIVATE, create_file};
use agreements_protocol::PrivateKey;
use anyhow::Context as _;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder to write the files into (created if missing).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// File name prefix, e.g. `app` gives `app_private_key_pkcs1.pem`.
    #[arg(long, default_value = "app")]
    pub name: String,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

/// The files of one generated pair.
#[derive(Debug)]
pub struct KeyFiles {
    /// PKCS#1 PEM private key (Python and Node SDKs).
    pub private_pkcs1_pem: PathBuf,
    /// PKCS#8 PEM private key.
    pub private_pkcs8_pem: PathBuf,
    /// SPKI PEM public key.
    pub public_spki_pem: PathBuf,
    /// Bare base64 SPKI (the console form; what `app add` stores).
    pub public_spki_b64: PathBuf,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let files = write_pair(&args.out, &args.name, args.force)?;
    super::print(&format!(
        "wrote an RSA-2048 key pair:\n  private (PKCS#1 PEM, Python/Node SDKs): {}\n  private (PKCS#8 PEM):                   {}\n  private (bare base64, PKCS#1 / PKCS#8 for Java): {}_private_key_pkcs1.b64 / {}_private_key_pkcs8.b64\n  public  (SPKI PEM):                     {}\n  public  (bare base64 SPKI, for app add): {}\n",
        files.private_pkcs1_pem.display(),
        files.private_pkcs8_pem.display(),
        args.out.join(&args.name).display(),
        args.out.join(&args.name).display(),
        files.public_spki_pem.display(),
        files.public_spki_b64.display(),
    ))
}

/// Generates a pair and writes it under `dir` with prefix `name`. Private files are 0600.
pub fn write_pair(dir: &Path, name: &str, force: bool) -> anyhow::Result<KeyFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = PrivateKey::generate(2048)?;
    let public = key.public_key()?;
    let path = |suffix: &str| dir.join(format!("{name}_{suffix}"));
    let files = KeyFiles {
        private_pkcs1_pem: path("private_key_pkcs1.pem"),
        private_pkcs8_pem: path("private_key_pkcs8.pem"),
        public_spki_pem: path("public_key_spki.pem"),
        public_spki_b64: path("public_key_spki.b64"),
    };
    write(&files.private_pkcs1_pem, &key.to_pkcs1_pem()?, true, force)?;
    write(&files.private_pkcs8_pem, &key.to_pkcs8_pem()?, true, force)?;
    write(
        &path("private_key_pkcs1.b64"),
        &format!("{}\n", key.to_pkcs1_base64()?),
        true,
        force,
    )?;
    write(
        &path("private_key_pkcs8.b64"),
        &format!("{}\n", key.to_pkcs8_base64()?),
        true,
        force,
    )?;
    write(&files.public_spki_pem, &public.to_spki_pem()?, false, force)?;
    write(
        &files.public_spki_b64,
        &format!("{}\n", public.to_spki_base64()?),
        false,
        force,
    )?;
    Ok(files)
}

pub fn write(path: &Path, text: &str, secret: bool, force: bool) -> anyhow::Result<()> {
    let mode = if secret { PRIVATE } else { 0o644 };
    let mut file = create_file(path, mode, force)
        .with_context(|| format!("writing {} (use --force to replace)", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
