//! Class labels from class folders: `root/<class>/<file>` (ImageNet's train layout), in a folder
//! or a zip. A zip whose every file sits under one top folder (`digits.zip` holding
//! `digits/0/…`) is read as that folder. Classes are sorted by name, so the same folders give the
//! same label numbers on every machine.

use std::path::Path;

use crate::error::{Error, Result};

/// The classes (sorted) and each name's label, for `names` of the images loaded from `source`,
/// with `folders` the class folders listed at its root (empty where they cannot be listed, as in
/// a zip). A file outside any class folder, a class folder without an image, or fewer than one
/// class is an error naming the source and what was expected.
pub fn class_folders(
    source: &Path,
    names: &[String],
    folders: &[String],
) -> Result<(Vec<String>, Vec<u32>)> {
    // Listed folders are the classes; a zip's names alone may sit under a wrapper folder.
    let wrapper = folders
        .is_empty()
        .then(|| common_top_folder(names))
        .flatten();
    let class_of = |name: &str| -> Result<String> {
        let rest = match &wrapper {
            Some(top) => &name[top.len() + 1..],
            None => name,
        };
        match rest.split_once('/') {
            Some((class, _)) => Ok(class.to_string()),
            None => Err(Error::invalid(
                "data",
                format!(
                    "{} holds {name} outside any class folder; expected the class-folder layout \
                     root/<class>/<image> (ImageNet's train layout)",
                    source.display()
                ),
            )),
        }
    };
    let of_names: Vec<String> = names.iter().map(|n| class_of(n)).collect::<Result<_>>()?;
    let mut classes: Vec<String> = of_names.clone();
    classes.extend(folders.iter().cloned());
    classes.sort();
    classes.dedup();
    if classes.is_empty() {
        return Err(Error::invalid(
            "data",
            format!(
                "{} has no class folders; expected root/<class>/<image>",
                source.display()
            ),
        ));
    }
    let labels: Vec<u32> = of_names
        .iter()
        .map(|c| {
            classes
                .binary_search(c)
                .expect("every name's class is listed") as u32
        })
        .collect();
    check_every_class_has(
        &super::count_classes(&classes, Some(&labels)),
        "image that loads",
        Some(source),
    )?;
    Ok((classes, labels))
}

/// The class rule every labelled surface shares (`inspect --classes`, `load_labelled`, `encode`
/// into a store, conditional training): each class has at least one `what` ("image that loads",
/// "code"); otherwise an error naming the class folder under `source` (or the class, where the
/// folder is not known): a conditional model would learn an embedding for a class it never
/// sees, and sample it as noise.
pub fn check_every_class_has(
    counts: &[(String, usize)],
    what: &str,
    source: Option<&Path>,
) -> Result<()> {
    let empty: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(class, _)| match source {
            Some(source) => source.join(class).display().to_string(),
            None => class.clone(),
        })
        .collect();
    let (one_noun, many_noun) = match source {
        Some(_) => ("class folder", "class folders"),
        None => ("class", "classes"),
    };
    match empty.as_slice() {
        [] => Ok(()),
        [one] => Err(Error::invalid(
            "data",
            format!(
                "{one_noun} {one} has no {what} (the files skipped under it say why); add images \
                 or remove the folder"
            ),
        )),
        many => Err(Error::invalid(
            "data",
            format!(
                "{many_noun} {} have no {what} (the files skipped under them say why); add images \
                 or remove the folders",
                many.join(", ")
            ),
        )),
    }
}

/// The top folder every name sits under, when some name also has a class folder below it. A
/// file directly under that folder (`top/stray.png` beside `top/cat/…`) is then outside any class
/// folder, an error, rather than making `top` the only class.
fn common_top_folder(names: &[String]) -> Option<String> {
    let first = names.first()?.split('/').next()?;
    let under_first = names
        .iter()
        .all(|n| n.split_once('/').is_some_and(|(top, _)| top == first));
    let deeper = names.iter().any(|n| n.split('/').count() >= 3);
    (under_first && deeper).then(|| first.to_string())
}

/// The non-hidden sub-folders of `root` (the class folders of a folder source), or none when it
/// cannot be read. A symlink to a folder is a class folder, as the listing of images follows
/// symlinks too. Names are read as the listing reads them (bytes that are not UTF-8 become
/// U+FFFD), so two folders whose names differ only there would be one class: an error naming
/// both.
pub fn list_folders(root: &Path) -> Result<Vec<String>> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(Vec::new());
    };
    let mut folders: Vec<(String, std::ffi::OsString)> = entries
        .flatten()
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.file_name()))
        .filter(|(name, _)| !name.starts_with('.') && name != "__MACOSX")
        .collect();
    folders.sort();
    one_folder_per_class(root, &folders)?;
    if let Some(pair) = folders.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::invalid(
            "data",
            format!(
                "class folders {:?} and {:?} of {} read as the same class name {:?} (their names \
                 are not UTF-8 text); rename one",
                pair[0].1,
                pair[1].1,
                root.display(),
                pair[0].0
            ),
        ));
    }
    Ok(folders.into_iter().map(|(name, _)| name).collect())
}

/// Refuses two class folders that are one folder (a symlink beside its target, or two symlinks
/// to one place), and a class folder that holds `root` itself (a symlink loop): the listing reads
/// each folder once, so one of the pair would look empty, and be blamed for it.
fn one_folder_per_class(root: &Path, folders: &[(String, std::ffi::OsString)]) -> Result<()> {
    let real_root = std::fs::canonicalize(root).ok();
    let mut seen: Vec<(std::path::PathBuf, &std::ffi::OsString)> = Vec::new();
    for (_, name) in folders {
        let Ok(real) = std::fs::canonicalize(root.join(name)) else {
            continue;
        };
        let shown = |name: &std::ffi::OsStr| root.join(name).display().to_string();
        if real_root.as_ref().is_some_and(|r| r.starts_with(&real)) {
            return Err(Error::invalid(
                "data",
                format!(
                    "class folder {} is {}, which holds {} itself (a symlink loop); a class \
                     folder holds only its own images",
                    shown(name),
                    real.display(),
                    root.display()
                ),
            ));
        }
        if let Some((_, first)) = seen.iter().find(|(r, _)| *r == real) {
            return Err(Error::invalid(
                "data",
                format!(
                    "class folders {} and {} are the same folder ({}); each class needs a folder \
                     of its own: remove the symlink or copy the images",
                    shown(first),
                    shown(name),
                    real.display()
                ),
            ));
        }
        seen.push((real, name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn labels_follow_the_sorted_class_folders() {
        let src = Path::new("data");
        let (classes, labels) =
            class_folders(src, &names(&["dog/1.png", "cat/a.png", "dog/2.png"]), &[]).unwrap();
        assert_eq!((classes, labels), (names(&["cat", "dog"]), vec![1, 0, 1]));
        // A zip's single top folder is looked through.
        let (classes, labels) =
            class_folders(src, &names(&["digits/7/0.png", "digits/1/5.png"]), &[]).unwrap();
        assert_eq!((classes, labels), (names(&["1", "7"]), vec![1, 0]));
        // One class folder with nested folders is one class, not a wrapper.
        let (classes, _) =
            class_folders(src, &names(&["faces/a/0.png"]), &names(&["faces"])).unwrap();
        assert_eq!(classes, names(&["faces"]));
    }

    #[cfg(unix)]
    #[test]
    fn class_folders_whose_names_read_the_same_are_an_error_naming_both() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        for raw in [&b"cat"[..], b"dog\xff", b"link"] {
            std::fs::create_dir(dir.path().join(std::ffi::OsStr::from_bytes(raw))).unwrap();
        }
        // A symlink to a folder is a class folder; a hidden folder is not.
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::remove_dir(dir.path().join("link")).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("link")).unwrap();
        assert_eq!(
            list_folders(dir.path()).unwrap(),
            names(&["cat", "dog\u{fffd}", "link"])
        );
        std::fs::create_dir(dir.path().join(std::ffi::OsStr::from_bytes(b"dog\xfe"))).unwrap();
        let err = list_folders(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(r#""dog\xFE" and "dog\xFF""#) && err.contains("rename one"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_class_folder_that_is_another_or_holds_the_root_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("cat")).unwrap();
        std::os::unix::fs::symlink(root.join("cat"), root.join("kitten")).unwrap();
        let err = list_folders(&root).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "class folders {0}/cat and {0}/kitten are the same folder",
                root.display()
            )),
            "{err}"
        );
        std::fs::remove_file(root.join("kitten")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        let err = list_folders(&root).unwrap_err().to_string();
        assert!(
            err.contains(&format!("class folder {}/up is", root.display()))
                && err.contains("a symlink loop"),
            "{err}"
        );
        std::fs::remove_file(root.join("up")).unwrap();
        assert_eq!(list_folders(&root).unwrap(), names(&["cat"]));
    }

    #[test]
    fn a_loose_file_or_an_empty_class_is_an_error() {
        let src = Path::new("data");
        let err = class_folders(src, &names(&["cat/a.png", "b.png"]), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("b.png outside any class folder"), "{err}");
        // In a zip whose class folders sit under one top folder, a file beside them is loose
        // too, not a reason to read `top` as the only class.
        let err = class_folders(
            src,
            &names(&["top/cat/a.png", "top/dog/b.png", "top/stray.png"]),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("top/stray.png outside any class folder"),
            "{err}"
        );
        // A zip of one folder of images (no class folders below it) is one class.
        let (classes, _) = class_folders(src, &names(&["top/a.png", "top/b.png"]), &[]).unwrap();
        assert_eq!(classes, names(&["top"]));
        let err = class_folders(src, &names(&["cat/a.png"]), &names(&["cat", "dog"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("data/dog has no image"), "{err}");
        let err = class_folders(src, &names(&["cat/a.png"]), &names(&["cat", "dog", "eel"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("class folders data/dog, data/eel have no image"),
            "{err}"
        );
    }
}
