// Names of files a server keeps in its data directory that other programs
// (the CLI, `flotilla up`) read: a contract between the server and its tools.

/** The server's admin token (mode 0600), needed for membership changes. */
export const ADMIN_TOKEN_FILE = 'admin-token';
