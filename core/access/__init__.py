"""Who we are and where to: profiles and config, clouds, MSAL sign-in, the token cache, opening a bridge."""
