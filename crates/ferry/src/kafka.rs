//! What the kafka2 output and the kafka_group input share: TLS and SASL as fluent-plugin-kafka
//! names them, and librdkafka checking every property while the configuration is read (so a
//! misspelt property is reported with its file:line, `--dry-run` included).

use ferry_config::Section;
use rdkafka::ClientConfig;

/// TLS and SASL, as fluent-plugin-kafka names them.
pub fn read_security(section: &Section<'_>, props: &mut Vec<(String, String)>) {
    let mut ssl = false;
    let file = |key: &str, property: &str, props: &mut Vec<(String, String)>| {
        let path = section.str(key)?;
        if std::fs::metadata(&path).is_err() {
            section.error(Some(key), format!("{key} '{path}' cannot be read"));
        }
        props.push((property.to_string(), path));
        Some(())
    };
    ssl |= file("ssl_ca_cert", "ssl.ca.location", props).is_some();
    ssl |= file("ssl_client_cert", "ssl.certificate.location", props).is_some();
    ssl |= file("ssl_client_cert_key", "ssl.key.location", props).is_some();
    if let Some(password) = section.str("ssl_client_cert_key_password") {
        props.push(("ssl.key.password".into(), password));
    }
    if section.bool_or("ssl_ca_certs_from_system", false) {
        ssl = true;
        props.push(("ssl.ca.location".into(), "probe".into()));
    }
    if !section.bool_or("ssl_verify_hostname", true) {
        props.push((
            "ssl.endpoint.identification.algorithm".into(),
            "none".into(),
        ));
    }
    let username = section.str("username");
    let password = section.str("password");
    let sasl_over_ssl = section.bool_or("sasl_over_ssl", true);
    let scram = section.opt_enum("scram_mechanism", &["sha256", "sha512"]);
    let protocol = match (&username, &password) {
        (Some(user), Some(pass)) => {
            let mechanism = match scram {
                Some("sha256") => "SCRAM-SHA-256",
                Some(_) => "SCRAM-SHA-512",
                None => "PLAIN",
            };
            props.push(("sasl.mechanism".into(), mechanism.into()));
            props.push(("sasl.username".into(), user.clone()));
            props.push(("sasl.password".into(), pass.clone()));
            if sasl_over_ssl {
                "sasl_ssl"
            } else {
                "sasl_plaintext"
            }
        }
        (None, None) => {
            if scram.is_some() {
                section.error(
                    Some("scram_mechanism"),
                    "scram_mechanism needs username and password",
                );
            }
            if ssl { "ssl" } else { "plaintext" }
        }
        _ => {
            section.error(None, "SASL needs both username and password");
            "plaintext"
        }
    };
    props.push(("security.protocol".into(), protocol.into()));
}

/// Lets librdkafka check every property now, so a wrong name or value is a configuration error
/// with its line, not a failure at start-up.
pub fn check_properties(section: &Section<'_>, properties: &[(String, String)]) {
    let mut config = ClientConfig::new();
    for (k, v) in properties {
        config.set(k, v);
    }
    if let Err(e) = config.create_native_config() {
        let key = section.has("rdkafka_options").then_some("rdkafka_options");
        section.error(key, format!("librdkafka refuses the configuration: {e}"));
    }
}

/// One of librdkafka's own log lines, in ferry's log under `who` (`output kafka_1`, ...). Its
/// severe lines are warnings; its errors and notices (a broker that went away, ...) are
/// information, because the client retries them and reports what it gives up on elsewhere;
/// its debug lines (`rdkafka_options {"debug":"fetch"}`) show at `log_level debug`.
pub fn log_line(who: &str, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
    use rdkafka::config::RDKafkaLogLevel as L;
    match level {
        L::Emerg | L::Alert | L::Critical => tracing::warn!("{who}: librdkafka {fac}: {message}"),
        L::Error | L::Warning | L::Notice => tracing::info!("{who}: librdkafka {fac}: {message}"),
        L::Info | L::Debug => tracing::debug!("{who}: librdkafka {fac}: {message}"),
    }
}
