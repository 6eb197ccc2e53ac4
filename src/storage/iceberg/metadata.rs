//! Finding a table's metadata file in its folder: `version-hint.text` where a Hadoop catalog
//! wrote one, else the file with the highest version number.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The suffix of an Iceberg table metadata file.
pub(super) const METADATA_SUFFIX: &str = ".metadata.json";

/// Whether `folder` holds an Iceberg table: a `metadata/` folder with a metadata file.
pub fn is_table_folder(folder: &Path) -> bool {
    newest_metadata(&folder.join("metadata")).is_ok_and(|m| m.is_some())
}

/// The metadata file of `folder` with the highest version number, if any.
pub(super) fn newest_metadata(folder: &Path) -> Result<Option<PathBuf>> {
    let entries = std::fs::read_dir(folder)
        .map_err(|e| Error::unavailable(format!("cannot list {}: {e}", folder.display())))?;
    Ok(entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter_map(|path| metadata_version(file_name(&path)).map(|v| (v, path)))
        .max()
        .map(|(_, path)| path))
}

pub(super) fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

/// The file `version-hint.text` names (tables of Hadoop catalogs), if it exists.
pub(super) fn hinted_metadata(folder: &Path) -> Option<PathBuf> {
    let hint = std::fs::read_to_string(folder.join("version-hint.text")).ok()?;
    let version: u64 = hint.trim().parse().ok()?;
    let path = folder.join(format!("v{version}{METADATA_SUFFIX}"));
    path.is_file().then_some(path)
}

/// The version in a metadata file's name: `00003-<uuid>.metadata.json` and `v3.metadata.json`
/// are 3; other files have none.
fn metadata_version(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(METADATA_SUFFIX)?;
    let stem = stem.strip_prefix('v').unwrap_or(stem);
    let digits = stem.split('-').next()?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::metadata_version;

    #[test]
    fn metadata_file_names_give_their_version() {
        assert_eq!(
            metadata_version("00012-0b6f9d0e-3c1a-4f44-9d1c-6f0a3b5e7c21.metadata.json"),
            Some(12)
        );
        assert_eq!(metadata_version("v3.metadata.json"), Some(3));
        assert_eq!(metadata_version("00001-x.metadata.json.tmp"), None);
        assert_eq!(metadata_version("snap-123.avro"), None);
        assert_eq!(metadata_version("version-hint.text"), None);
    }
}
