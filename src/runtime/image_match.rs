//! Which engine image a reference names, which containers were created from it, and the
//! registry digests it carries: pure functions over the engine's listings, shared by the planner,
//! the status and the API. No I/O.

use oci_client::Reference;

use super::{ContainerSummary, ImageSummary};
use crate::spec::image::canonical_reference;
use crate::spec::validate::is_image_id;

/// The canonical form of a name Docker lists (`busybox:1.36`), if it parses.
fn canonical(name: &str) -> Option<String> {
    canonical_reference(name).ok()
}

/// The engine's image that `reference` (canonical form, or an image id) resolves to.
pub fn find_local<'a>(images: &'a [ImageSummary], reference: &str) -> Option<&'a ImageSummary> {
    if is_image_id(reference) {
        return images.iter().find(|i| i.id == reference);
    }
    images.iter().find(|i| {
        i.repo_tags
            .iter()
            .chain(i.repo_digests.iter())
            .any(|t| canonical(t).as_deref() == Some(reference))
    })
}

/// Was `container` created from `reference` (canonical form), whose engine image is `image`?
/// By the name it was created from; by the image alone when that is the image's only name
/// (another name of the same image is another image to its users: removing this one only
/// untags).
pub fn created_from(container: &ContainerSummary, image: &ImageSummary, reference: &str) -> bool {
    if container.image_id != image.id {
        return false;
    }
    container.image == image.id
        || canonical(&container.image).as_deref() == Some(reference)
        || image.repo_tags.len() <= 1
}

/// The repository part of a canonical reference (`docker.io/library/busybox`).
fn repository(reference: &str) -> Option<String> {
    let r = Reference::try_from(reference).ok()?;
    Some(format!("{}/{}", r.registry(), r.repository()))
}

/// The registry digest the image has for the repository of `reference`, if it was pulled or
/// pushed by digest there.
pub fn repo_digest(image: &ImageSummary, reference: &str) -> Option<String> {
    let repo = repository(reference)?;
    image.repo_digests.iter().find_map(|d| {
        let (name, digest) = d.split_once('@')?;
        (repository(name).as_deref() == Some(repo.as_str())).then(|| digest.to_string())
    })
}

/// Was `image` pulled (or pushed) as `digest` in the repository of `reference`?
pub fn has_digest(image: &ImageSummary, reference: &str, digest: &str) -> bool {
    let Some(repo) = repository(reference) else {
        return false;
    };
    image.repo_digests.iter().any(|d| {
        d.split_once('@')
            .is_some_and(|(name, dg)| dg == digest && repository(name).as_deref() == Some(&repo))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(tags: &[&str], digests: &[&str]) -> ImageSummary {
        ImageSummary {
            id: "sha256:1".into(),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            ..ImageSummary::default()
        }
    }

    #[test]
    fn local_images_match_the_way_docker_names_them() {
        let images = [image(
            &["busybox:1.36", "127.0.0.1:5000/team/app:2"],
            &["busybox@sha256:aa"],
        )];
        assert!(find_local(&images, "docker.io/library/busybox:1.36").is_some());
        assert!(find_local(&images, "docker.io/library/busybox:latest").is_none());
        assert!(find_local(&images, "127.0.0.1:5000/team/app:2").is_some());
        assert!(find_local(&images, "sha256:1").is_none(), "not a full id");
        assert_eq!(
            repo_digest(&images[0], "docker.io/library/busybox:1.36").as_deref(),
            Some("sha256:aa")
        );
        assert_eq!(repo_digest(&images[0], "127.0.0.1:5000/team/app:2"), None);
        assert!(has_digest(
            &images[0],
            "docker.io/library/busybox:1.36",
            "sha256:aa"
        ));
    }

    #[test]
    fn users_are_containers_created_from_the_reference() {
        let image = image(&["busybox:1", "127.0.0.1:5000/team/app:1"], &[]);
        let container = |from: &str| ContainerSummary {
            id: "c".into(),
            name: "demo.web".into(),
            image: from.into(),
            image_id: "sha256:1".into(),
            state: super::super::ContainerState::Running,
            labels: Default::default(),
            created: 0,
            health: None,
        };
        let app = "127.0.0.1:5000/team/app:1";
        assert!(created_from(&container(app), &image, app));
        assert!(created_from(&container("sha256:1"), &image, app));
        assert!(
            !created_from(&container("busybox:1"), &image, app),
            "another name of the same image"
        );
        let only = ImageSummary {
            repo_tags: vec![app.into()],
            ..image.clone()
        };
        assert!(created_from(&container("busybox:1"), &only, app));
    }
}
