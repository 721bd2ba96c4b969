/** The name of xennet's nftables tables (`bridge xennet`, `inet xennet`). */
export const NFT_TABLE = 'xennet';
