//! Maps whose keys are not strings (a config resource, a quota entity, a partition) as
//! JSON lists of `[key, value]` pairs: JSON object keys must be strings.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub fn serialize<'a, S, K, V, M>(map: &'a M, serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    K: Serialize + 'a,
    V: Serialize + 'a,
    &'a M: IntoIterator<Item = (&'a K, &'a V)>,
{
    serializer.collect_seq(map)
}

pub fn deserialize<'de, D, K, V, M>(deserializer: D) -> Result<M, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de>,
    V: Deserialize<'de>,
    M: FromIterator<(K, V)>,
{
    let pairs: Vec<(K, V)> = Vec::deserialize(deserializer)?;
    Ok(pairs.into_iter().collect())
}
