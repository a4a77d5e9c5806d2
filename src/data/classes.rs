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
    let mut counts = vec![0usize; classes.len()];
    let labels: Vec<u32> = of_names
        .iter()
        .map(|c| {
            let label = classes
                .binary_search(c)
                .expect("every name's class is listed");
            counts[label] += 1;
            label as u32
        })
        .collect();
    if let Some(empty) = counts.iter().position(|&c| c == 0) {
        return Err(Error::invalid(
            "data",
            format!(
                "class folder {} has no image that loads; add images or remove the folder",
                source.join(&classes[empty]).display()
            ),
        ));
    }
    Ok((classes, labels))
}

/// The top folder every name sits under, when each also has a class folder below it.
fn common_top_folder(names: &[String]) -> Option<String> {
    let first = names.first()?.split('/').next()?;
    let all = names.iter().all(|n| {
        let mut parts = n.split('/');
        parts.next() == Some(first) && parts.count() >= 2
    });
    all.then(|| first.to_string())
}

/// The non-hidden sub-folders of `root` (the class folders of a folder source), or none when it
/// cannot be read.
pub fn list_folders(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| !name.starts_with('.') && name != "__MACOSX")
        .collect()
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

    #[test]
    fn a_loose_file_or_an_empty_class_is_an_error() {
        let src = Path::new("data");
        let err = class_folders(src, &names(&["cat/a.png", "b.png"]), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("b.png outside any class folder"), "{err}");
        let err = class_folders(src, &names(&["cat/a.png"]), &names(&["cat", "dog"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("data/dog has no image"), "{err}");
    }
}
