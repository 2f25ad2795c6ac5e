//! Logging in through an OpenID provider: the authorization code flow with PKCE, `state`
//! and `nonce`, ending in our own session.
