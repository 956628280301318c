//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554). Credentials live in
//! the metadata log, so a change is known to every node once committed. The client sends a
//! salted password (never the password); the broker derives and stores the keys.
//!
//! Results are per user, as in Kafka: a user whose changes include one that is refused
//! (or that names the same mechanism twice) changes nothing and gets that error; the other
//! users' changes commit together.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_metadata::scram::{check_deletion, check_upsertion, ScramError};
use runnel_metadata::MetadataRecord;
use runnel_protocol::ResponseError;

use super::Context;
use crate::sasl::scram::credential;

fn error_code(error: &ScramError) -> ResponseError {
    match error {
        ScramError::UnknownMechanism(_) => ResponseError::UnsupportedSaslMechanism,
        ScramError::NotFound { .. } => ResponseError::ResourceNotFound,
        ScramError::Duplicate => ResponseError::DuplicateResource,
        ScramError::EmptyName | ScramError::Iterations(_) | ScramError::KeyLength { .. } | ScramError::EmptySalt => {
            ResponseError::UnacceptableCredential
        }
    }
}

pub fn describe(ctx: &Context, request: DescribeUserScramCredentialsRequest) -> DescribeUserScramCredentialsResponse {
    let image = ctx.broker.metadata.image();
    let info = |user: &str| -> Vec<CredentialInfo> {
        image
            .scram
            .get(user)
            .into_iter()
            .flatten()
            .map(|(mechanism, credential)| {
                CredentialInfo::default()
                    .with_mechanism(mechanism.code())
                    .with_iterations(i32::try_from(credential.iterations).unwrap_or(i32::MAX))
            })
            .collect()
    };
    let results = match request.users {
        // Null or empty: every user with a credential.
        None => image.scram.keys().map(|user| (user.clone(), Ok(info(user)))).collect(),
        Some(users) if users.is_empty() => image.scram.keys().map(|user| (user.clone(), Ok(info(user)))).collect(),
        Some(users) => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for user in &users {
                *counts.entry(user.name.as_str()).or_default() += 1;
            }
            counts
                .into_iter()
                .map(|(user, count)| {
                    let result = if count > 1 {
                        Err((
                            ResponseError::DuplicateResource,
                            "Cannot describe SCRAM credentials for the same user twice",
                        ))
                    } else if !image.scram.contains_key(user) {
                        Err((
                            ResponseError::ResourceNotFound,
                            "Attempt to describe a user credential that does not exist",
                        ))
                    } else {
                        Ok(info(user))
                    };
                    (user.to_string(), result)
                })
                .collect::<Vec<_>>()
        }
    };
    let results = results
        .into_iter()
        .map(|(user, result)| {
            let described = DescribeUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
            match result {
                Ok(infos) => described.with_credential_infos(infos),
                Err((error, message)) => {
                    described.with_error_code(error.code()).with_error_message(Some(StrBytes::from_static_str(message)))
                }
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub fn alter(ctx: &Context, request: AlterUserScramCredentialsRequest) -> AlterUserScramCredentialsResponse {
    // Every (user, mechanism) named, to find duplicates across deletions and upsertions.
    let mut named: BTreeMap<(String, i8), usize> = BTreeMap::new();
    for (name, mechanism) in request
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .chain(request.upsertions.iter().map(|u| (u.name.to_string(), u.mechanism)))
    {
        *named.entry((name, mechanism)).or_default() += 1;
    }
    let mut outcome: BTreeMap<String, Result<(), ScramError>> = BTreeMap::new();
    for ((user, _), count) in &named {
        let entry = outcome.entry(user.clone()).or_insert(Ok(()));
        if *count > 1 {
            *entry = Err(ScramError::Duplicate);
        }
    }
    let mut failed: BTreeMap<String, ScramError> = BTreeMap::new();
    let committed = ctx.broker.metadata.commit(|image| {
        let mut per_user: BTreeMap<String, Vec<MetadataRecord>> = BTreeMap::new();
        for deletion in &request.deletions {
            let user = deletion.name.to_string();
            match check_deletion(&image.scram, &user, deletion.mechanism) {
                Ok(mechanism) => per_user
                    .entry(user.clone())
                    .or_default()
                    .push(MetadataRecord::RemoveUserScramCredential { name: user, mechanism }),
                Err(e) => {
                    failed.entry(user).or_insert(e);
                }
            }
        }
        for upsertion in &request.upsertions {
            let user = upsertion.name.to_string();
            let checked = check_upsertion(
                &user,
                upsertion.mechanism,
                upsertion.iterations,
                &upsertion.salt,
                &upsertion.salted_password,
            );
            match checked {
                Ok(mechanism) => {
                    let iterations = u32::try_from(upsertion.iterations).expect("checked within range");
                    let credential = credential(mechanism, &upsertion.salt, &upsertion.salted_password, iterations);
                    per_user.entry(user.clone()).or_default().push(MetadataRecord::UserScramCredential {
                        name: user,
                        mechanism,
                        credential,
                    });
                }
                Err(e) => {
                    failed.entry(user).or_insert(e);
                }
            }
        }
        let records: Vec<MetadataRecord> = per_user
            .into_iter()
            .filter(|(user, _)| !failed.contains_key(user) && outcome.get(user).is_none_or(Result::is_ok))
            .flat_map(|(_, records)| records)
            .collect();
        Ok::<_, std::convert::Infallible>(records)
    });
    let results = match committed {
        Ok(Ok(_)) => outcome
            .into_iter()
            .map(|(user, duplicate)| {
                let result = duplicate.and_then(|()| failed.get(&user).cloned().map_or(Ok(()), Err));
                let described = AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
                match result {
                    Ok(()) => described,
                    Err(e) => described
                        .with_error_code(error_code(&e).code())
                        .with_error_message(Some(StrBytes::from_string(e.to_string()))),
                }
            })
            .collect(),
        Ok(Err(never)) => match never {},
        Err(e) => {
            let code = crate::metadata_store::metadata_error_code(&e).code();
            outcome
                .into_keys()
                .map(|user| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(StrBytes::from_string(user))
                        .with_error_code(code)
                        .with_error_message(Some(StrBytes::from_string(e.to_string())))
                })
                .collect()
        }
    };
    AlterUserScramCredentialsResponse::default().with_results(results)
}
