-- 问题分类维度: the 3-level category tree, one row per level-3 category.
select category_code, category_name, category_l2_code, category_l2_name, category_l1_code, category_l1_name,
       default_department
from {{ ref('ref_categories') }}
