-- A deposit request names itself with a client_id: the same (account, client_id) again
-- is the same deposit (locked and credited once), like a withdrawal's client_id on L2.

ALTER TABLE l1.messages ADD COLUMN client_id text;
CREATE UNIQUE INDEX l1_messages_client_id ON l1.messages (account, client_id)
    WHERE direction = 'l1_to_l2' AND client_id IS NOT NULL;
