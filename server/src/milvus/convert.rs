//! Conversions between Milvus's wire schema and the manifest's version-independent
//! schema. Both directions live here so a round trip can be tested in one place.

use milvault_proto::milvault::v1 as mv;
use milvault_proto::milvus::common::ConsistencyLevel as ms_consistency;
use milvault_proto::milvus::common::KeyValuePair;
use milvault_proto::milvus::schema as ms;

/// Milvus key/value pairs → manifest pairs (order kept).
pub(crate) fn kvs_from(pairs: &[KeyValuePair]) -> Vec<mv::KeyValue> {
    pairs
        .iter()
        .map(|p| mv::KeyValue {
            key: p.key.clone(),
            value: p.value.clone(),
        })
        .collect()
}

/// Manifest pairs → Milvus pairs.
pub(crate) fn kvs_to(pairs: &[mv::KeyValue]) -> Vec<KeyValuePair> {
    pairs
        .iter()
        .map(|p| KeyValuePair {
            key: p.key.clone(),
            value: p.value.clone(),
        })
        .collect()
}

/// Milvus consistency level (Strong = 0 ...) → manifest (Strong = 1 ...); an unknown
/// level becomes unspecified (restored as Milvus's default).
pub(crate) fn consistency_from(level: i32) -> mv::ConsistencyLevel {
    mv::ConsistencyLevel::try_from(level + 1).unwrap_or(mv::ConsistencyLevel::Unspecified)
}

/// Manifest consistency level → Milvus (unspecified becomes Milvus's default, Bounded).
pub(crate) fn consistency_to(level: mv::ConsistencyLevel) -> i32 {
    match level {
        mv::ConsistencyLevel::Unspecified => ms_consistency::Bounded as i32,
        other => other as i32 - 1,
    }
}

fn default_from(v: &ms::ValueField) -> Option<mv::DefaultValue> {
    use ms::value_field::Data as M;
    use mv::default_value::Value as D;
    let value = match v.data.as_ref()? {
        M::BoolData(b) => D::BoolValue(*b),
        M::IntData(i) => D::IntValue(*i),
        M::LongData(i) => D::LongValue(*i),
        M::FloatData(f) => D::FloatValue(*f),
        M::DoubleData(f) => D::DoubleValue(*f),
        M::StringData(s) => D::StringValue(s.clone()),
        M::BytesData(b) => D::BytesValue(b.clone()),
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    Some(mv::DefaultValue { value: Some(value) })
}

fn default_to(v: &mv::DefaultValue) -> Option<ms::ValueField> {
    use ms::value_field::Data as M;
    use mv::default_value::Value as D;
    let data = match v.value.as_ref()? {
        D::BoolValue(b) => M::BoolData(*b),
        D::IntValue(i) => M::IntData(*i),
        D::LongValue(i) => M::LongData(*i),
        D::FloatValue(f) => M::FloatData(*f),
        D::DoubleValue(f) => M::DoubleData(*f),
        D::StringValue(s) => M::StringData(s.clone()),
        D::BytesValue(b) => M::BytesData(b.clone()),
    };
    Some(ms::ValueField { data: Some(data) })
}

/// Milvus schema → manifest schema.
pub(crate) fn schema_from(s: &ms::CollectionSchema) -> mv::CollectionSchema {
    mv::CollectionSchema {
        name: s.name.clone(),
        description: s.description.clone(),
        #[allow(deprecated)]
        auto_id: s.auto_id,
        enable_dynamic_field: s.enable_dynamic_field,
        properties: kvs_from(&s.properties),
        fields: s
            .fields
            .iter()
            .map(|f| mv::FieldSchema {
                field_id: f.field_id,
                name: f.name.clone(),
                description: f.description.clone(),
                data_type: f.data_type,
                is_primary_key: f.is_primary_key,
                auto_id: f.auto_id,
                type_params: kvs_from(&f.type_params),
                index_params: kvs_from(&f.index_params),
                element_type: f.element_type,
                default_value: f.default_value.as_ref().and_then(default_from),
                is_dynamic: f.is_dynamic,
                is_partition_key: f.is_partition_key,
                is_clustering_key: f.is_clustering_key,
                nullable: f.nullable,
            })
            .collect(),
    }
}

/// Manifest schema → the Milvus schema to create, renamed to `name`.
///
/// The dynamic `$meta` field is left out (Milvus adds it itself when
/// `enable_dynamic_field` is set), and fields keep their backup order, which is what
/// makes Milvus assign the same field IDs (100, 101, ...) as the source had.
pub(crate) fn schema_to(s: &mv::CollectionSchema, name: &str) -> ms::CollectionSchema {
    #[allow(deprecated)]
    ms::CollectionSchema {
        name: name.to_owned(),
        description: s.description.clone(),
        auto_id: s.auto_id,
        enable_dynamic_field: s.enable_dynamic_field,
        properties: kvs_to(&s.properties),
        fields: s
            .fields
            .iter()
            .filter(|f| !f.is_dynamic)
            .map(|f| ms::FieldSchema {
                field_id: f.field_id,
                name: f.name.clone(),
                description: f.description.clone(),
                data_type: f.data_type,
                is_primary_key: f.is_primary_key,
                auto_id: f.auto_id,
                type_params: kvs_to(&f.type_params),
                index_params: kvs_to(&f.index_params),
                element_type: f.element_type,
                default_value: f.default_value.as_ref().and_then(default_to),
                is_dynamic: false,
                is_partition_key: f.is_partition_key,
                is_clustering_key: f.is_clustering_key,
                nullable: f.nullable,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_round_trip_keeps_everything_but_meta() {
        #[allow(deprecated)]
        let milvus = ms::CollectionSchema {
            name: "c".into(),
            description: "d".into(),
            enable_dynamic_field: true,
            fields: vec![
                ms::FieldSchema {
                    field_id: 100,
                    name: "pk".into(),
                    is_primary_key: true,
                    data_type: 21,
                    type_params: vec![KeyValuePair {
                        key: "max_length".into(),
                        value: "64".into(),
                    }],
                    ..Default::default()
                },
                ms::FieldSchema {
                    field_id: 101,
                    name: "n".into(),
                    data_type: 5,
                    default_value: Some(ms::ValueField {
                        data: Some(ms::value_field::Data::LongData(7)),
                    }),
                    ..Default::default()
                },
                ms::FieldSchema {
                    field_id: 102,
                    name: "$meta".into(),
                    data_type: 23,
                    is_dynamic: true,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let ours = schema_from(&milvus);
        assert_eq!(ours.fields.len(), 3);
        let back = schema_to(&ours, "c2");
        assert_eq!(back.name, "c2");
        assert_eq!(back.fields.len(), 2);
        assert_eq!(back.fields[0], milvus.fields[0]);
        assert_eq!(back.fields[1], milvus.fields[1]);
        assert!(back.enable_dynamic_field);
    }

    #[test]
    fn consistency_levels_shift_by_one() {
        for l in 0..5 {
            assert_eq!(consistency_to(consistency_from(l)), l);
        }
        assert_eq!(consistency_to(mv::ConsistencyLevel::Unspecified), 2);
    }
}
