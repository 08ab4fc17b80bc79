//! Dataset paths: resolved against the configuration file's folder, and
//! checked only on request (`Config::validate_paths`), so a configuration can
//! be inspected, printed or written out on a machine without the data.

use std::path::{Component, Path, PathBuf};

/// `raw` as an absolute-looking path: relative paths are joined to `base`
/// (the configuration file's folder), then `.` and `name/..` are removed
/// lexically so that paths read well in messages and run records.
/// Placeholders such as `{local_base_path}` are kept as written.
pub(crate) fn resolve(base: &Path, raw: &str) -> PathBuf {
    let raw = Path::new(raw);
    if raw.is_absolute() {
        normalize(raw)
    } else {
        normalize(&base.join(raw))
    }
}

/// Removes `.` components and folds `name/..` pairs, without touching the disk.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let last = out.components().next_back();
                match last {
                    Some(Component::Normal(_)) => {
                        out.pop();
                    }
                    // `/..` is `/`; a leading `..` of a relative path stays.
                    Some(Component::RootDir | Component::Prefix(_)) => {}
                    _ => out.push(".."),
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// The folder a configuration file's relative paths are resolved against:
/// its parent, made absolute so that a copy written to a run directory still
/// points at the same data.
pub(crate) fn base_dir_of(file: &Path) -> PathBuf {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    normalize(&std::path::absolute(&parent).unwrap_or(parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_to_base() {
        let base = Path::new("/work/x/configs");
        assert_eq!(
            resolve(base, "../assets/train"),
            PathBuf::from("/work/x/assets/train")
        );
        assert_eq!(resolve(base, "/data/./hr/"), PathBuf::from("/data/hr"));
        assert_eq!(
            resolve(base, "{local_base_path}/hr"),
            PathBuf::from("/work/x/configs/{local_base_path}/hr")
        );
        assert_eq!(
            normalize(Path::new("../a/../../b")),
            PathBuf::from("../../b")
        );
        assert_eq!(normalize(Path::new("/../a")), PathBuf::from("/a"));
        assert_eq!(normalize(Path::new("a/..")), PathBuf::from("."));
    }

    #[test]
    fn base_dir_is_absolute() {
        assert!(base_dir_of(Path::new("x.yaml")).is_absolute());
        assert!(base_dir_of(Path::new("configs/x.yaml")).ends_with("configs"));
    }
}
