//! What a schema needs from a Milvus version, decided in one table.
//!
//! A backup keeps the schema exactly as the source encoded it (`milvus_schema`), so a
//! restore recreates everything the source had: functions, struct fields, clustering
//! keys, nullable fields, defaults, analyzer parameters. Before anything is created,
//! [`refusals`] lists every element the target cannot hold (a restore that would lose
//! it is refused, naming each), and at backup time [`not_understood`] lists elements
//! this build does not know (refused rather than dropped on restore).

use milvault_proto::milvault::v1::IndexBackup;
use milvault_proto::milvus::schema::{self as ms, DataType, FunctionType};
use prost::Message;

use super::features::{Features, Version};

/// The first Milvus version that holds a data type (field or array element).
fn first_version(t: DataType) -> Version {
    match t {
        DataType::Json => Version::new(2, 2, 9),
        DataType::Array | DataType::Float16Vector => Version::new(2, 3, 0),
        DataType::BFloat16Vector | DataType::SparseFloatVector => Version::new(2, 4, 0),
        DataType::Geometry => Version::new(2, 5, 0),
        DataType::Text
        | DataType::Int8Vector
        | DataType::ArrayOfVector
        | DataType::ArrayOfStruct => Version::new(2, 6, 0),
        DataType::Timestamptz => Version::new(2, 6, 1),
        DataType::Struct => Version::new(2, 6, 3),
        DataType::Mol => Version::new(3, 0, 0),
        _ => Version::new(2, 2, 0),
    }
}

fn is_vector(t: DataType) -> bool {
    matches!(
        t,
        DataType::BinaryVector
            | DataType::FloatVector
            | DataType::Float16Vector
            | DataType::BFloat16Vector
            | DataType::SparseFloatVector
            | DataType::Int8Vector
    )
}

/// Decodes the schema a backup kept (empty bytes: `None`).
pub(crate) fn decode(raw: &[u8]) -> Option<ms::CollectionSchema> {
    if raw.is_empty() {
        return None;
    }
    ms::CollectionSchema::decode(raw).ok()
}

/// Everything in `schema` (and its indexes) that a target of `target` cannot hold,
/// one sentence each; empty when the target can hold it all.
pub(crate) fn refusals(
    target: Features,
    schema: &ms::CollectionSchema,
    indexes: &[IndexBackup],
) -> Vec<String> {
    let v = target.version;
    let mut out = Vec::new();
    let need = |what: String, first: Version, out: &mut Vec<String>| {
        if v < first {
            out.push(format!("{what} (needs Milvus {first} or later)"));
        }
    };
    for f in &schema.fields {
        if f.is_dynamic {
            continue;
        }
        let t = f.data_type();
        need(
            format!("field {:?} of type {}", f.name, t.as_str_name()),
            first_version(t),
            &mut out,
        );
        if t == DataType::Array {
            let e = f.element_type();
            need(
                format!("field {:?}: arrays of {}", f.name, e.as_str_name()),
                first_version(e),
                &mut out,
            );
        }
        if f.nullable {
            need(
                format!("nullable field {:?}", f.name),
                Version::new(2, 5, 0),
                &mut out,
            );
        }
        if f.default_value.is_some() {
            need(
                format!("default value of field {:?}", f.name),
                Version::new(2, 3, 0),
                &mut out,
            );
        }
        if f.is_partition_key {
            need(
                format!("partition key {:?}", f.name),
                Version::new(2, 2, 9),
                &mut out,
            );
        }
        if f.is_clustering_key {
            need(
                format!("clustering key {:?}", f.name),
                Version::new(2, 4, 0),
                &mut out,
            );
        }
    }
    let vectors = schema
        .fields
        .iter()
        .filter(|f| is_vector(f.data_type()))
        .count();
    if vectors > 1 {
        need(
            format!("{vectors} vector fields"),
            Version::new(2, 4, 0),
            &mut out,
        );
    }
    if schema.enable_dynamic_field {
        need("the dynamic field".into(), Version::new(2, 2, 9), &mut out);
    }
    for func in &schema.functions {
        need(
            format!("function {:?} ({})", func.name, func.r#type().as_str_name()),
            Version::new(2, 5, 0),
            &mut out,
        );
    }
    for s in &schema.struct_array_fields {
        need(
            format!("struct field {:?}", s.name),
            Version::new(2, 6, 0),
            &mut out,
        );
    }
    for i in indexes {
        let metric = i
            .params
            .iter()
            .find(|kv| kv.key == "metric_type")
            .map(|kv| kv.value.to_ascii_uppercase());
        if metric.as_deref() == Some("COSINE") {
            need(
                format!("index {:?} with metric COSINE", i.index_name),
                Version::new(2, 3, 0),
                &mut out,
            );
        }
    }
    out
}

/// Elements of a source schema this build does not understand; a backup of such a
/// collection is refused instead of losing them on restore.
pub(crate) fn not_understood(schema: &ms::CollectionSchema) -> Vec<String> {
    let mut out = Vec::new();
    for f in &schema.fields {
        if DataType::try_from(f.data_type).is_err() {
            out.push(format!(
                "field {:?} has data type {} unknown to this build",
                f.name, f.data_type
            ));
        }
        if f.data_type() == DataType::Array && DataType::try_from(f.element_type).is_err() {
            out.push(format!(
                "field {:?} holds arrays of data type {} unknown to this build",
                f.name, f.element_type
            ));
        }
        if !f.external_field.is_empty() {
            out.push(format!(
                "field {:?} is an external field (Milvus 3.0)",
                f.name
            ));
        }
    }
    for func in &schema.functions {
        match FunctionType::try_from(func.r#type) {
            Ok(FunctionType::Bm25 | FunctionType::TextEmbedding | FunctionType::Rerank) => {}
            _ => out.push(format!(
                "function {:?} of type {} unknown to this build",
                func.name, func.r#type
            )),
        }
    }
    if !schema.external_source.is_empty() || !schema.file_resource_ids.is_empty() {
        out.push("external sources or file resources (Milvus 3.0)".into());
    }
    out
}

/// The schema to create for a restored collection named `name`: the source's own
/// encoding, renamed, without the dynamic field (Milvus adds it itself).
pub(crate) fn for_create(mut schema: ms::CollectionSchema, name: &str) -> ms::CollectionSchema {
    schema.name = name.to_owned();
    schema.fields.retain(|f| !f.is_dynamic);
    schema.db_name.clear();
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, t: DataType) -> ms::FieldSchema {
        ms::FieldSchema {
            name: name.into(),
            data_type: t as i32,
            ..Default::default()
        }
    }

    #[test]
    fn refusals_name_each_item_the_target_cannot_hold() {
        let schema = ms::CollectionSchema {
            fields: vec![
                field("pk", DataType::Int64),
                field("v", DataType::FloatVector),
                field("s", DataType::SparseFloatVector),
                ms::FieldSchema {
                    nullable: true,
                    ..field("n", DataType::Int32)
                },
            ],
            functions: vec![ms::FunctionSchema {
                name: "bm".into(),
                r#type: FunctionType::Bm25 as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        let cosine = IndexBackup {
            index_name: "i".into(),
            params: vec![milvault_proto::milvault::v1::KeyValue {
                key: "metric_type".into(),
                value: "COSINE".into(),
            }],
            ..Default::default()
        };
        let on = |v: &str| {
            refusals(
                Features::new(Version::parse(v).expect("version")),
                &schema,
                std::slice::from_ref(&cosine),
            )
        };
        let r22 = on("v2.2.16");
        assert_eq!(r22.len(), 5, "{r22:?}");
        assert!(r22.iter().any(|r| r.contains("COSINE")));
        assert!(r22.iter().any(|r| r.contains("2 vector fields")));
        let r24 = on("v2.4.10");
        assert_eq!(r24.len(), 2, "{r24:?}");
        assert!(on("v2.6.8").is_empty());
    }

    #[test]
    fn unknown_elements_are_named() {
        let mut schema = ms::CollectionSchema {
            fields: vec![ms::FieldSchema {
                name: "x".into(),
                data_type: 77,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(not_understood(&schema).len(), 1);
        schema.fields[0].data_type = DataType::Int64 as i32;
        assert!(not_understood(&schema).is_empty());
    }
}
