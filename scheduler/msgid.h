/*
 * msgid.h -- message ids in SendGrid's style, for both intakes.
 */
#ifndef WU_MSGID_H
#define WU_MSGID_H

/* Writes 22 characters of base64url and a NUL into out (23 bytes). */
void msgid_make(char *out);

#endif
