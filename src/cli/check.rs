//! `meshql check`, `meshql schema`, `meshql hash-password` and `meshql token`: the commands that
//! look at mesh files and secrets without serving anything.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use meshql::engine::Engine;
use meshql::{Error, Result};

/// Validates the mesh folder, then the contracts against what their products were published
/// under.
pub async fn check(dir: &Path) -> Result<ExitCode> {
    let mesh = super::load(dir)?;
    let transforms = mesh.transforms().count();
    let jobs = mesh
        .datasets()
        .filter(|d| matches!(d.kind, meshql::spec::DatasetKind::Job(_)))
        .count();
    let products = mesh.products().count();
    let datasets = mesh.datasets().count();
    let summary = format!(
        "mesh `{}`: {} domains, {datasets} datasets ({transforms} transforms, {jobs} written by jobs, {products} products)",
        mesh.name,
        mesh.domains.len()
    );
    let engine = Engine::new(Arc::new(mesh))?;
    let problems = meshql::quality::semver::guard(&engine).await?;
    if !problems.is_empty() {
        eprintln!("{}", meshql::spec::Diagnostics(problems));
        return Err(Error::user(format!(
            "the mesh in {} breaks the versioning of its contracts",
            dir.display()
        )));
    }
    println!("{summary}; no problems found");
    Ok(ExitCode::SUCCESS)
}

pub fn write_schemas(out: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(out)
        .map_err(|e| Error::user(format!("cannot create {}: {e}", out.display())))?;
    for (name, text) in meshql::spec::json_schemas() {
        let path = out.join(name);
        std::fs::write(&path, text)
            .map_err(|e| Error::user(format!("cannot write {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn hash_password() -> Result<ExitCode> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .map_err(|e| Error::user(format!("cannot read the password: {e}")))?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(Error::user("the password is empty"));
    }
    println!("{}", meshql::governance::hash_password(password)?);
    Ok(ExitCode::SUCCESS)
}

pub fn token() -> Result<ExitCode> {
    let (token, hash) = meshql::governance::new_token();
    println!("token: {token}");
    println!("hash:  {hash}");
    Ok(ExitCode::SUCCESS)
}
