//! Manifests as JSON: their media types, what an image manifest references, the
//! entries of an index (attestations told apart), an image config's platform,
//! and the index multiarch writes (OCI, annotated; or a Docker manifest list).

use serde_json::{json, Map, Value};

use crate::spec::Platform;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The annotation BuildKit marks an attestation manifest with, and the one
/// naming the image it is about.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

pub use crate::spec::IndexFormat;

/// The media type of the list `format` makes.
pub fn index_media_type(format: IndexFormat) -> &'static str {
    match format {
        IndexFormat::Oci => OCI_INDEX,
        IndexFormat::Docker => DOCKER_LIST,
    }
}

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// The `mediaType` a manifest names itself.
pub fn media_type_in(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    if let Some(t) = v.get("mediaType").and_then(|t| t.as_str()) {
        return Some(t.to_string());
    }
    // An OCI manifest may leave it out: its shape says which it is.
    if v.get("manifests").is_some() {
        Some(OCI_INDEX.to_string())
    } else if v.get("config").is_some() {
        Some(OCI_MANIFEST.to_string())
    } else {
        None
    }
}

/// A descriptor: what an index entry or a manifest's config/layer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub platform: Option<Platform>,
    pub annotations: Map<String, Value>,
}

impl Descriptor {
    fn parse(v: &Value) -> Option<Descriptor> {
        let platform = v.get("platform").and_then(platform_fields);
        Some(Descriptor {
            media_type: v.get("mediaType")?.as_str()?.to_string(),
            digest: v.get("digest")?.as_str()?.to_string(),
            size: v.get("size")?.as_u64()?,
            platform,
            annotations: v
                .get("annotations")
                .and_then(|a| a.as_object())
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// The image an attestation manifest is about, when this is one.
    pub fn attests(&self) -> Option<&str> {
        (self.annotations.get(REFERENCE_TYPE)?.as_str()? == "attestation-manifest")
            .then(|| self.annotations.get(REFERENCE_DIGEST)?.as_str())?
    }

    fn to_json(&self, with_annotations: bool) -> Value {
        let mut m = Map::new();
        m.insert("mediaType".into(), json!(self.media_type));
        m.insert("digest".into(), json!(self.digest));
        m.insert("size".into(), json!(self.size));
        if let Some(p) = &self.platform {
            let mut pm = Map::new();
            pm.insert("architecture".into(), json!(p.arch));
            pm.insert("os".into(), json!(p.os));
            if let Some(v) = &p.variant {
                pm.insert("variant".into(), json!(v));
            }
            m.insert("platform".into(), Value::Object(pm));
        }
        if with_annotations && !self.annotations.is_empty() {
            m.insert(
                "annotations".into(),
                Value::Object(self.annotations.clone()),
            );
        }
        Value::Object(m)
    }
}

/// The entries of an index (`manifests`), in order. `None`: not an index.
pub fn entries(bytes: &[u8]) -> Option<Vec<Descriptor>> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.get("manifests")?
        .as_array()?
        .iter()
        .map(Descriptor::parse)
        .collect()
}

/// An index's annotations.
pub fn annotations(bytes: &[u8]) -> Map<String, Value> {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("annotations")?.as_object().cloned())
        .unwrap_or_default()
}

/// What an image manifest references: its config, then its layers.
pub fn image_blobs(bytes: &[u8]) -> Option<(Descriptor, Vec<Descriptor>)> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let config = Descriptor::parse(v.get("config")?)?;
    let layers = v
        .get("layers")
        .and_then(|l| l.as_array())
        .map(|l| l.iter().filter_map(Descriptor::parse).collect())
        .unwrap_or_default();
    Some((config, layers))
}

/// The platform an image config records (`os`, `architecture`, `variant`).
pub fn config_platform(bytes: &[u8]) -> Option<Platform> {
    platform_fields(&serde_json::from_slice(bytes).ok()?)
}

/// `os`, `architecture` and a non-empty `variant`: the fields of an index
/// entry's `platform` and of an image config alike.
fn platform_fields(v: &Value) -> Option<Platform> {
    Some(Platform {
        os: v.get("os")?.as_str()?.to_string(),
        arch: v.get("architecture")?.as_str()?.to_string(),
        variant: v
            .get("variant")
            .and_then(|x| x.as_str())
            .filter(|x| !x.is_empty())
            .map(str::to_string),
    })
}

/// A platform as containerd and docker compare them: arm64 without a variant
/// is `v8`, arm without one is `v7`.
pub fn normalized(p: &Platform) -> Platform {
    let variant = match (p.arch.as_str(), p.variant.as_deref()) {
        ("arm64", None) => Some("v8".to_string()),
        ("arm", None) => Some("v7".to_string()),
        (_, v) => v.map(str::to_string),
    };
    Platform {
        os: p.os.clone(),
        arch: p.arch.clone(),
        variant,
    }
}

/// Exactly the same platform, variant included, after normalisation.
pub fn same_platform(a: &Platform, b: &Platform) -> bool {
    normalized(a) == normalized(b)
}

/// The entries of an image (not attestations) of an index.
pub fn image_entries(entries: &[Descriptor]) -> impl Iterator<Item = &Descriptor> {
    entries.iter().filter(|e| {
        e.attests().is_none()
            && e.platform
                .as_ref()
                .is_none_or(|p| p.os != "unknown" || p.arch != "unknown")
    })
}

/// The image entries of an index for `want` (variant normalised: arm64 is
/// arm64/v8): the one a list holds for an arch, or none, or (a broken index)
/// several.
pub fn images_for<'a>(
    entries: &'a [Descriptor],
    want: &'a Platform,
) -> impl Iterator<Item = &'a Descriptor> {
    image_entries(entries)
        .filter(move |e| e.platform.as_ref().is_some_and(|p| same_platform(p, want)))
}

/// The index bytes: `entries` in order, with `annotations` (OCI only; a Docker
/// manifest list has none, and neither have its entries).
pub fn build(
    format: IndexFormat,
    entries: &[Descriptor],
    annotations: &[(String, String)],
) -> Vec<u8> {
    let oci = format == IndexFormat::Oci;
    let mut m = Map::new();
    m.insert("schemaVersion".into(), json!(2));
    m.insert("mediaType".into(), json!(index_media_type(format)));
    m.insert(
        "manifests".into(),
        Value::Array(entries.iter().map(|e| e.to_json(oci)).collect()),
    );
    if oci && !annotations.is_empty() {
        let a: Map<String, Value> = annotations
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        m.insert("annotations".into(), Value::Object(a));
    }
    serde_json::to_vec_pretty(&Value::Object(m)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn platforms_compare_exactly_after_normalisation() {
        assert!(same_platform(&p("linux/arm64"), &p("linux/arm64/v8")));
        assert!(same_platform(&p("linux/arm"), &p("linux/arm/v7")));
        assert!(!same_platform(&p("linux/arm/v6"), &p("linux/arm/v7")));
        assert!(!same_platform(&p("linux/amd64"), &p("linux/arm64")));
        assert!(same_platform(&p("linux/amd64"), &p("linux/amd64")));
    }

    #[test]
    fn an_index_with_an_attestation_reads_back() {
        let img = Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            size: 10,
            platform: Some(p("linux/arm64/v8")),
            annotations: Map::new(),
        };
        let mut att_ann = Map::new();
        att_ann.insert(REFERENCE_TYPE.into(), json!("attestation-manifest"));
        att_ann.insert(REFERENCE_DIGEST.into(), json!(img.digest));
        let att = Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", "b".repeat(64)),
            size: 5,
            platform: Some(Platform {
                os: "unknown".into(),
                arch: "unknown".into(),
                variant: None,
            }),
            annotations: att_ann,
        };
        let bytes = build(
            IndexFormat::Oci,
            &[img.clone(), att.clone()],
            &[("org.opencontainers.image.revision".into(), "abc".into())],
        );
        assert_eq!(media_type_in(&bytes).as_deref(), Some(OCI_INDEX));
        let back = entries(&bytes).unwrap();
        assert_eq!(back, vec![img.clone(), att.clone()]);
        assert_eq!(back[1].attests(), Some(img.digest.as_str()));
        assert_eq!(image_entries(&back).count(), 1);
        assert_eq!(
            annotations(&bytes)["org.opencontainers.image.revision"],
            json!("abc")
        );
        let docker = build(IndexFormat::Docker, &[img], &[("a".into(), "b".into())]);
        assert_eq!(media_type_in(&docker).as_deref(), Some(DOCKER_LIST));
        assert!(annotations(&docker).is_empty());
    }

    #[test]
    fn manifests_and_configs() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:c","size":3},
            "layers":[{"mediaType":"l","digest":"sha256:l","size":9}]}"#;
        let (c, l) = image_blobs(m).unwrap();
        assert_eq!((c.digest.as_str(), l.len()), ("sha256:c", 1));
        assert_eq!(media_type_in(m).as_deref(), Some(DOCKER_MANIFEST));
        let cfg = br#"{"architecture":"arm","os":"linux","variant":"v7","config":{}}"#;
        assert_eq!(config_platform(cfg), Some(p("linux/arm/v7")));
        assert_eq!(entries(m), None);
    }
}
